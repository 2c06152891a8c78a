"""The Messages API as the shared model-call path speaks it: the project's API key and
base URL, SSE relayed as it is, Anthropic error bodies. Every door on ``/v1`` (messages,
batches, files, models) reaches upstream through one of these."""

from __future__ import annotations

from aiohttp import web

from tether.errors import TetherError
from tether.gateway.anthropic.errors import anthropic_error_response
from tether.gateway.anthropic.upstream import request_headers
from tether.gateway.model.wire import ModelCall, SseWire, UpstreamTarget
from tether.identity.directory import AgentIdentity
from tether.identity.upstream_keys import UpstreamKeys
from tether.records.fleet import Project

__all__ = ["ANTHROPIC_VERSION", "AnthropicWire", "NoUpstreamCredential"]

PROVIDER = "anthropic"
ANTHROPIC_VERSION = "2023-06-01"


class NoUpstreamCredential(TetherError):
    code = "no_upstream_credential"


class AnthropicWire(SseWire):
    """The Messages API: the project's API key, its base URL, SSE relayed as it is."""

    upstream_name = "the Anthropic API"

    def __init__(self, keys: UpstreamKeys, default_base_url: str) -> None:
        self._keys = keys
        self._default_base_url = default_base_url

    def refusal(self, code: str, message: str, headers: dict[str, str]) -> web.Response:
        return anthropic_error_response(code, message, headers)

    async def target(
        self, request: web.Request, identity: AgentIdentity, call: ModelCall, body: bytes
    ) -> UpstreamTarget:
        base, api_key = await self.project_upstream(identity)
        path = "messages/count_tokens" if call.operation == "count_tokens" else "messages"
        url = f"{base}/v1/{path}"
        if request.query_string:
            url += f"?{request.query_string}"
        return UpstreamTarget(url, request_headers(request.headers, api_key), body)

    async def project_upstream(self, identity: AgentIdentity) -> tuple[str, str]:
        """The project's Anthropic base URL and key (the agent never sees it)."""
        return await self.upstream_of(identity.project)

    async def upstream_of(self, project: Project) -> tuple[str, str]:
        try:
            api_key = await self._keys.get(project.id, PROVIDER)
        except TetherError as exc:
            raise NoUpstreamCredential(exc.message) from None
        if api_key is None:
            raise NoUpstreamCredential(
                f"project {project.name!r} has no Anthropic credential; an operator must run "
                f"'tether credentials set {project.name} --provider anthropic'"
            )
        return (project.upstream_base_url or self._default_base_url).rstrip("/"), api_key
