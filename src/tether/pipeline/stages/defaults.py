"""The order of the stages, in one place."""

from __future__ import annotations

from tether.identity.directory import Directory
from tether.pipeline.pipeline import Stage
from tether.pipeline.stages.identify import IdentifyAgent
from tether.pipeline.stages.session import OpenSession
from tether.sessions.registry import SessionRegistry

__all__ = ["default_stages"]


def default_stages(directory: Directory, sessions: SessionRegistry) -> list[Stage]:
    return [IdentifyAgent(directory), OpenSession(sessions)]
