"""The in-memory directory of projects, agents, agent keys and admin tokens.

Loaded at start-up and kept fresh by the change feed, so identifying a caller on the
hot path is a dictionary lookup. A key this replica has not heard of yet is looked up
in the store once, so a key issued on another replica works at once. Every key it
admits is noted in ``KeyUse`` (last used, flushed in batches).
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.clock import now_ms
from tether.errors import AuthenticationFailed
from tether.identity.key_use import KeyUse
from tether.identity.read_order import ReadOrder
from tether.records.fleet import AdminToken, Agent, AgentAwsKey, AgentKey, Project
from tether.store.admin_tokens import AdminTokenStore
from tether.store.agents import AgentStore
from tether.store.aws_keys import AwsKeyStore
from tether.store.changes import Change
from tether.store.projects import ProjectStore
from tether.vault.bearer import hash_secret

__all__ = ["AgentIdentity", "Directory"]


@dataclass(frozen=True, slots=True)
class AgentIdentity:
    agent: Agent
    project: Project
    key: AgentKey


class Directory:
    def __init__(
        self,
        projects: ProjectStore,
        agents: AgentStore,
        tokens: AdminTokenStore,
        aws_keys: AwsKeyStore | None = None,
        key_use: KeyUse | None = None,
    ) -> None:
        self._key_use = key_use
        self._aws_key_store = aws_keys
        self._aws_keys: dict[str, AgentAwsKey] = {}
        self._project_store = projects
        self._agent_store = agents
        self._token_store = tokens
        self._projects: dict[str, Project] = {}
        self._agents: dict[str, Agent] = {}
        self._keys: dict[str, AgentKey] = {}
        self._admin_tokens: dict[str, AdminToken] = {}
        self._admin_token_reloads = 0
        self._reads = ReadOrder()

    async def load(self) -> None:
        self._projects = {p.id: p for p in await self._project_store.all()}
        self._agents = {a.id: a for a in await self._agent_store.all()}
        self._keys = {k.key_hash: k for k in await self._agent_store.live_keys()}
        self._admin_tokens = {t.token_hash: t for t in await self._token_store.all()}
        if self._aws_key_store is not None:
            self._aws_keys = {k.access_key_id: k for k in await self._aws_key_store.all()}

    async def apply(self, change: Change) -> None:
        if change.kind == "project":
            await self._reload_project(change.ref)
        elif change.kind == "agent":
            await self._reload_agent(change.ref)
        elif change.kind == "admin_token":
            self._admin_token_reloads += 1
            self._admin_tokens = {t.token_hash: t for t in await self._token_store.all()}

    async def project_changed(self, project_id: str) -> None:
        """This replica changed the project: see it at once, not at the next feed poll."""
        await self._reload_project(project_id)

    def project(self, project_id: str) -> Project | None:
        return self._projects.get(project_id)

    def agent(self, agent_id: str) -> Agent | None:
        return self._agents.get(agent_id)

    def is_agent_key(self, secret: str) -> bool:
        return hash_secret(secret) in self._keys

    async def identify_agent(self, secret: str, address: str | None = None) -> AgentIdentity:
        """The agent behind a key; raises ``AuthenticationFailed`` naming why it is refused.
        ``address``: the client's, noted with the key's use (front doors know it)."""
        key_hash = hash_secret(secret)
        key = self._keys.get(key_hash)
        if key is None:
            key = await self._agent_store.key_by_hash(key_hash)
            if key is None:
                raise AuthenticationFailed("the agent key is not valid", code="invalid_key")
            await self._reload_agent(key.agent_id)
        if key.revoked_at is not None:
            raise AuthenticationFailed("the agent key has been revoked", code="revoked_key")
        if key.expires_at is not None and now_ms() >= key.expires_at:
            raise AuthenticationFailed(
                "the agent key has expired (it was rotated); use the agent's new key",
                code="expired_key",
            )
        agent = self._agents.get(key.agent_id)
        project = self._projects.get(agent.project_id) if agent else None
        if agent is None or project is None:
            raise AuthenticationFailed("the agent key is not valid", code="invalid_key")
        if self._key_use is not None:
            self._key_use.note(key.id, address)
        return AgentIdentity(agent=agent, project=project, key=key)

    async def aws_key(self, access_key_id: str) -> AgentAwsKey | None:
        """An agent's AWS key pair record (sealed), revoked or not; None when unknown."""
        key = self._aws_keys.get(access_key_id)
        if key is None and self._aws_key_store is not None:
            key = await self._aws_key_store.by_access_key_id(access_key_id)
            if key is not None:
                await self._reload_agent(key.agent_id)
        return key

    def aws_secret(self, key: AgentAwsKey) -> str:
        """The secret half of an agent's AWS key, to verify its SigV4 signature: who signed
        a call is identity's answer, so the AWS door never reads the key store itself."""
        if self._aws_key_store is None:
            raise AuthenticationFailed("AWS keys are not served here", code="invalid_key")
        return self._aws_key_store.reveal(key)

    async def identify_aws(self, access_key_id: str) -> AgentIdentity:
        """The agent behind an AWS access key id (whose signature the AWS door verified);
        raises ``AuthenticationFailed`` naming why it is refused."""
        key = await self.aws_key(access_key_id)
        if key is None:
            raise AuthenticationFailed(
                f"the AWS access key id {access_key_id[:32]!r} is not valid", code="invalid_key"
            )
        if key.revoked_at is not None:
            raise AuthenticationFailed(
                f"the AWS access key id {access_key_id} has been revoked", code="revoked_key"
            )
        agent = self._agents.get(key.agent_id)
        project = self._projects.get(agent.project_id) if agent else None
        if agent is None or project is None:
            raise AuthenticationFailed("the AWS access key id is not valid", code="invalid_key")
        as_key = AgentKey(
            id=key.id,
            agent_id=key.agent_id,
            key_hash=f"aws:{key.access_key_id}",
            prefix=key.access_key_id[:12],
            created_at=key.created_at,
            expires_at=None,
            revoked_at=None,
        )
        return AgentIdentity(agent=agent, project=project, key=as_key)

    def note_address(self, key_id: str, address: str | None) -> None:
        """A key this directory does not admit itself (a broker key pair, whose signature
        the AWS door verified) used from ``address``: for the shared-key check."""
        if self._key_use is not None and address:
            self._key_use.note_address(key_id, address)

    async def identify_admin(self, secret: str) -> AdminToken | None:
        key_hash = hash_secret(secret)
        token = self._admin_tokens.get(key_hash)
        if token is None:
            token = await self._admin_token_read(key_hash)
        if token is None or token.revoked_at is not None:
            return None
        return token

    async def _admin_token_read(self, key_hash: str) -> AdminToken | None:
        """A token not held yet, read and held. A reload of the tokens (a revocation read
        from the feed) that began while it was read makes it be read again: the older row,
        held, would let a revoked token in until the next change."""
        reloads = self._admin_token_reloads
        token = await self._token_store.by_hash(key_hash)
        if self._admin_token_reloads != reloads:
            token = await self._token_store.by_hash(key_hash)
        if token is not None:
            self._admin_tokens[key_hash] = token
        return token

    async def _reload_project(self, project_id: str) -> None:
        read = self._reads.start(f"project:{project_id}")
        project = await self._project_store.get(project_id)
        if not self._reads.is_latest(read):
            return
        if project is None:
            self._projects.pop(project_id, None)
        else:
            self._projects[project_id] = project

    async def _reload_agent(self, agent_id: str) -> None:
        """Read first, then swap without awaiting, so no request sees a half-updated agent."""
        read = self._reads.start(f"agent:{agent_id}")
        agent = await self._agent_store.get(agent_id)
        keys = await self._agent_store.keys(agent_id) if agent else []
        aws_keys = (
            await self._aws_key_store.of_agent(agent_id)
            if agent is not None and self._aws_key_store is not None
            else []
        )
        if agent is not None and agent.project_id not in self._projects:
            await self._reload_project(agent.project_id)
        if not self._reads.is_latest(read):
            return
        for key_hash in [h for h, k in self._keys.items() if k.agent_id == agent_id]:
            del self._keys[key_hash]
        for key_id in [i for i, k in self._aws_keys.items() if k.agent_id == agent_id]:
            del self._aws_keys[key_id]
        if agent is None:
            self._agents.pop(agent_id, None)
            return
        self._agents[agent_id] = agent
        for key in keys:
            self._keys[key.key_hash] = key
        for aws_key in aws_keys:
            self._aws_keys[aws_key.access_key_id] = aws_key
