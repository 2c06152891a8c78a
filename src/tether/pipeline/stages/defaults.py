"""The order of the stages, in one place."""

from __future__ import annotations

from tether.identity.directory import Directory
from tether.kill.switch import KillSwitch
from tether.pipeline.pipeline import Stage
from tether.pipeline.stages.identify import IdentifyAgent
from tether.pipeline.stages.kill_switch import EnforceKillSwitch
from tether.pipeline.stages.session import OpenSession
from tether.pipeline.stages.usage import MeterUsage
from tether.pricing.prices import PriceTable
from tether.sessions.registry import SessionRegistry

__all__ = ["default_stages"]


def default_stages(
    directory: Directory, sessions: SessionRegistry, switch: KillSwitch, prices: PriceTable
) -> list[Stage]:
    return [
        IdentifyAgent(directory),
        OpenSession(sessions),
        EnforceKillSwitch(switch),
        MeterUsage(prices, sessions),
    ]
