"""The seam to the real Anthropic API: one pooled aiohttp client, and header hygiene.

aiohttp's client is the measured choice for this hot path (several times the throughput
of httpx's pool in a pass-through proxy on this kind of machine).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from tether.errors import TetherError
from tether.gateway.model.retry_after import relayed_retry_after

__all__ = ["AnthropicUpstream", "UpstreamFailed", "request_headers", "response_headers"]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
AGENT_ONLY = frozenset(
    {"authorization", "x-api-key", "accept-encoding", "x-tether-session-id", "cookie"}
)
NOT_RELAYED = frozenset({"content-encoding", "set-cookie", "retry-after", "retry-after-ms"})
"""``retry-after`` is relayed rewritten (``tether.gateway.model.retry_after``)."""


class UpstreamFailed(TetherError):
    """The upstream could not be reached or did not answer in time (502 / 504)."""


def request_headers(incoming: Mapping[str, str], api_key: str) -> CIMultiDict[str]:
    """Everything the agent sent except hop-by-hop headers and its own credential,
    plus tether's upstream credential."""
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in incoming.items():
        lower = name.lower()
        if lower not in HOP_BY_HOP and lower not in AGENT_ONLY:
            headers.add(name, value)
    headers["x-api-key"] = api_key
    headers["accept-encoding"] = "identity"
    return headers


def response_headers(upstream: CIMultiDictProxy[str], session_id: str | None) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        lower = name.lower()
        if lower not in HOP_BY_HOP and lower not in NOT_RELAYED:
            headers.add(name, value)
    wait = relayed_retry_after(upstream.get("retry-after"), upstream.get("retry-after-ms"))
    if wait is not None:
        headers["retry-after"] = wait
    if session_id:
        headers["tether-session-id"] = session_id
    return headers


class AnthropicUpstream:
    def __init__(self, connect_timeout: float, read_timeout: float) -> None:
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_read=read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=True,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, url: str | URL, headers: CIMultiDict[str]) -> aiohttp.ClientResponse:
        """A read of the Anthropic API (``/v1/models``), failures as for ``post``."""
        return await self.request("GET", url, headers)

    async def delete(self, url: str | URL, headers: CIMultiDict[str]) -> aiohttp.ClientResponse:
        return await self.request("DELETE", url, headers)

    async def request(
        self,
        method: str,
        url: str | URL,
        headers: CIMultiDict[str],
        body: AsyncIterable[bytes] | None = None,
    ) -> aiohttp.ClientResponse:
        """``body`` is streamed as it comes (a file upload is not held in memory)."""
        assert self._session is not None, "AnthropicUpstream.start() was not called"
        try:
            return await self._session.request(
                method, url, headers=headers, data=body, allow_redirects=False
            )
        except TimeoutError:
            raise UpstreamFailed(
                f"the Anthropic API at {url} did not answer in time", code="upstream_timeout"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamFailed(
                f"tether could not reach the Anthropic API at {url}: {exc}",
                code="upstream_unreachable",
            ) from None

    async def post(
        self,
        url: str | URL,
        headers: CIMultiDict[str],
        body: bytes,
        name: str = "the Anthropic API",
    ) -> aiohttp.ClientResponse:
        """``name`` says which upstream failed (Bedrock and Vertex calls share the pool)."""
        assert self._session is not None, "AnthropicUpstream.start() was not called"
        try:
            return await self._session.post(url, data=body, headers=headers, allow_redirects=False)
        except TimeoutError:
            raise UpstreamFailed(
                f"{name} at {url} did not answer in time", code="upstream_timeout"
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamFailed(
                f"tether could not reach {name} at {url}: {exc}",
                code="upstream_unreachable",
            ) from None
