"""The policy in force for each project, compiled once per version and kept in memory.

The change log tells every replica when a project's policy changes, so a new version
is in force everywhere within the feed's delay (NOTIFY on PostgreSQL, 0.25 s polling on
SQLite). A stored version that no longer compiles makes the project fail closed.
A project's shadow (a candidate decided beside the policy, never in its place) is kept
the same way; one that no longer compiles is dropped with an error in the log.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from tether.errors import TetherError
from tether.policy.compiled import CompiledPolicy, compile_policy
from tether.policy.pair import ShadowPair
from tether.store.changes import Change
from tether.store.policies import PolicyStore, PolicyVersion
from tether.store.policy_shadows import CHANGE_KIND as SHADOW_CHANGE
from tether.store.policy_shadows import PolicyShadow, PolicyShadowStore

__all__ = ["PolicyBook", "PolicyInForce", "ShadowInForce"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PolicyInForce:
    version: int
    compiled: CompiledPolicy | None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class ShadowInForce:
    sha256: str
    compiled: CompiledPolicy


NO_POLICY = PolicyInForce(version=0, compiled=compile_policy(""))
"""A project without a policy: default deny (model calls aside, see ``BASE_POLICY``)."""


class PolicyBook:
    def __init__(self, store: PolicyStore, shadows: PolicyShadowStore) -> None:
        self._store = store
        self._shadow_store = shadows
        self._by_project: dict[str, PolicyInForce] = {}
        self._shadows: dict[str, ShadowInForce] = {}
        self._pairs: dict[str, ShadowPair] = {}

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

    @staticmethod
    def _compile_shadow(shadow: PolicyShadow) -> ShadowInForce | None:
        try:
            return ShadowInForce(shadow.sha256, compile_policy(shadow.source))
        except TetherError as exc:
            log.error(
                "the shadow policy of project %s does not compile; not evaluated: %s",
                shadow.project_id,
                exc.message,
            )
            return None

    async def load(self) -> None:
        self._by_project = {v.project_id: self._compile(v) for v in await self._store.all_current()}
        self._shadows = {
            s.project_id: compiled
            for s in await self._shadow_store.all()
            if (compiled := self._compile_shadow(s)) is not None
        }

    async def apply(self, change: Change) -> None:
        if change.kind == SHADOW_CHANGE:
            await self._apply_shadow(change.ref)
            return
        if change.kind != "policy":
            return
        version = await self._store.current(change.ref)
        in_force = self._by_project.get(change.ref)
        if version is None:
            self._by_project.pop(change.ref, None)
        elif in_force is None or in_force.version != version.version:
            compiled = await asyncio.to_thread(self._compile, version)
            latest = self._by_project.get(change.ref)
            if latest is None or latest.version <= compiled.version:
                self._by_project[change.ref] = compiled

    def in_force(self, project_id: str) -> PolicyInForce:
        return self._by_project.get(project_id, NO_POLICY)

    def remembered(self) -> dict[str, int]:
        """What every compiled policy holds (``tether_in_memory_entries``): bounded a
        version, so by the number of projects."""
        compiled = [p.compiled for p in self._by_project.values() if p.compiled is not None]
        compiled += [s.compiled for s in self._shadows.values()]
        kept = [policy.kept() for policy in compiled]
        return {
            "policy_answers": sum(answers for answers, _ in kept),
            "policy_entity_sets": sum(entities for _, entities in kept),
        }

    async def _apply_shadow(self, project_id: str) -> None:
        shadow = await self._shadow_store.get(project_id)
        known = self._shadows.get(project_id)
        if shadow is None:
            self._shadows.pop(project_id, None)
        elif known is None or known.sha256 != shadow.sha256:
            compiled = await asyncio.to_thread(self._compile_shadow, shadow)
            if compiled is None:
                self._shadows.pop(project_id, None)
            else:
                self._shadows[project_id] = compiled

    def shadow(self, project_id: str) -> CompiledPolicy | None:
        """The candidate decided beside the policy in force, if the project runs one."""
        known = self._shadows.get(project_id)
        return known.compiled if known else None

    def shadow_pair(self, project_id: str) -> ShadowPair | None:
        """The policy in force and the shadow, asked together (built on first use after
        either changes); None when the project runs no shadow or its policy is unusable."""
        known = self._shadows.get(project_id)
        live = self._by_project.get(project_id, NO_POLICY).compiled
        if known is None or live is None:
            return None
        pair = self._pairs.get(project_id)
        if pair is None or pair.live is not live or pair.candidate is not known.compiled:
            pair = self._pairs[project_id] = ShadowPair(live, known.compiled)
        return pair
