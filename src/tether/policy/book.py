"""The policy in force for each project, compiled once per version and kept in memory.

The change log tells every replica when a project's policy changes, so a new version
is in force everywhere within the feed's delay (NOTIFY on PostgreSQL, 0.25 s polling on
SQLite). A stored version that no longer compiles makes the project fail closed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tether.errors import TetherError
from tether.policy.compiled import CompiledPolicy, compile_policy
from tether.store.changes import Change
from tether.store.policies import PolicyStore, PolicyVersion

__all__ = ["PolicyBook", "PolicyInForce"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PolicyInForce:
    version: int
    compiled: CompiledPolicy | None
    problem: str | None = None


NO_POLICY = PolicyInForce(version=0, compiled=compile_policy(""))
"""A project without a policy: default deny (model calls aside, see ``BASE_POLICY``)."""


class PolicyBook:
    def __init__(self, store: PolicyStore) -> None:
        self._store = store
        self._by_project: dict[str, PolicyInForce] = {}

    @staticmethod
    def _compile(version: PolicyVersion) -> PolicyInForce:
        try:
            return PolicyInForce(version.version, compile_policy(version.source))
        except TetherError as exc:
            log.error(
                "policy v%d of project %s does not compile: %s",
                version.version,
                version.project_id,
                exc.message,
            )
            return PolicyInForce(version.version, None, exc.message)

    async def load(self) -> None:
        self._by_project = {v.project_id: self._compile(v) for v in await self._store.all_current()}

    async def apply(self, change: Change) -> None:
        if change.kind != "policy":
            return
        version = await self._store.current(change.ref)
        in_force = self._by_project.get(change.ref)
        if version is None:
            self._by_project.pop(change.ref, None)
        elif in_force is None or in_force.version != version.version:
            self._by_project[change.ref] = self._compile(version)

    def in_force(self, project_id: str) -> PolicyInForce:
        return self._by_project.get(project_id, NO_POLICY)
