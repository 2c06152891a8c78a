"""The dashboard's only way to read or change anything: the admin API itself, called
over loopback with the operator's own token, so its gate decides roles and audits every
click exactly as it does for the CLI."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from tether.admin.routing import PREFIX

__all__ = ["AdminCallFailed", "AdminCaller", "Page"]


class AdminCallFailed(Exception):
    """The admin API said no: its status, code and message, shown to the operator."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, slots=True)
class Page:
    """One listing and the query of its next page (``X-Tether-Next-Page``), if any."""

    items: list[dict[str, Any]]
    next_page: str | None


def loopback_base(request: web.Request) -> str:
    """The address this request arrived on: the admin API is served on the same one."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if not sockname:
        raise AdminCallFailed(503, "dashboard_unavailable", "the connection has no local address")
    host, port = sockname[0], sockname[1]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{PREFIX}"


class AdminCaller:
    """Admin API calls made for one page view, as the logged-in operator."""

    def __init__(self, client: aiohttp.ClientSession, base: str, token: str) -> None:
        self._client = client
        self._base = base
        self._headers = {"Authorization": f"Bearer {token}"}

    async def get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return (await self._call("GET", path, params=params))[0]

    async def page(self, path: str, params: Mapping[str, str] | None = None) -> Page:
        body, headers = await self._call("GET", path, params=params)
        return Page(list(body), headers.get("X-Tether-Next-Page"))

    async def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        return (await self._call("POST", path, json=dict(body or {})))[0]

    async def stream(self, path: str, params: Mapping[str, str]) -> AsyncIterator[bytes]:
        """The body of a long answer (an export) as it arrives."""
        async with self._client.get(
            self._base + path, params=params, headers=self._headers
        ) as response:
            if response.status >= 400:
                raise await _failure(response)
            async for chunk in response.content.iter_chunked(65536):
                yield chunk

    async def _call(self, method: str, path: str, **kwargs: Any) -> tuple[Any, Mapping[str, str]]:
        async with self._client.request(
            method, self._base + path, headers=self._headers, **kwargs
        ) as response:
            if response.status >= 400:
                raise await _failure(response)
            if response.status == 204:
                return None, response.headers
            return await response.json(), response.headers


async def _failure(response: aiohttp.ClientResponse) -> AdminCallFailed:
    try:
        error = (await response.json()).get("error", {})
        return AdminCallFailed(response.status, str(error["code"]), str(error["message"]))
    except (aiohttp.ContentTypeError, ValueError, KeyError, AttributeError, TypeError):
        return AdminCallFailed(response.status, "admin_api_error", f"HTTP {response.status}")
