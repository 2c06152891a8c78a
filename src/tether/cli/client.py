"""The admin API over HTTP for the CLI; errors become ``CliError`` with the server's message."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from tether.web.headers import NEXT_PAGE_HEADER

if TYPE_CHECKING:
    import httpx

__all__ = ["AdminClient", "CliError", "default_token_file"]

EXIT_API_ERROR = 1
EXIT_UNREACHABLE = 3


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def default_token_file() -> Path:
    data_dir = os.environ.get("TETHER_DATA_DIR") or str(Path.home() / ".tether")
    return Path(data_dir).expanduser() / "admin.token"


@dataclass
class AdminClient:
    url: str
    token: str | None
    timeout: float = 30.0

    @classmethod
    def from_env(cls, url: str | None, token: str | None) -> AdminClient:
        url = url or os.environ.get("TETHER_URL") or "http://127.0.0.1:8080"
        token = token or os.environ.get("TETHER_ADMIN_TOKEN")
        if not token:
            token_file = default_token_file()
            if token_file.exists():
                token = token_file.read_text().strip()
        return cls(url.rstrip("/"), token)

    def call(
        self, method: str, path: str, body: Any = None, params: dict[str, str | None] | None = None
    ) -> Any:
        return self.call_page(method, path, body, params)[0]

    def call_page(
        self, method: str, path: str, body: Any = None, params: dict[str, str | None] | None = None
    ) -> tuple[Any, str | None]:
        """The answer and, for a list cut at its limit, the query parameter of the next
        page (``name=value``), else None."""
        headers = {"Authorization": f"Bearer {self._token()}"}
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None})
        content = None if body is None else json.dumps(body).encode()
        if content is not None:
            headers["Content-Type"] = "application/json"
        status, reason, next_page, raw = self._request(
            method, f"/admin/v1{path}" + (f"?{query}" if query else ""), content, headers
        )
        if status == 204:
            return None, None
        try:
            payload = json.loads(raw)
        except ValueError:
            raise CliError(f"tether answered {status} with a non-JSON body") from None
        if status >= 400:
            raise _api_error(status, reason, payload)
        return payload, next_page

    def _request(
        self, method: str, target: str, content: bytes | None, headers: dict[str, str]
    ) -> tuple[int, str, str | None, bytes]:
        """One request on the standard library's client: the CLI starts in a fraction of
        the time it takes to import an HTTP library (``httpx`` only for streams)."""
        url = urlsplit(self.url)
        kind = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        prefix = url.path.rstrip("/")
        try:
            connection = kind(url.netloc, timeout=self.timeout)
            try:
                connection.request(method, prefix + target, body=content, headers=headers)
                response = connection.getresponse()
                raw = response.read()
            finally:
                connection.close()
        except (OSError, http.client.HTTPException) as exc:
            raise CliError(
                f"cannot reach tether at {self.url}: {exc or type(exc).__name__}", EXIT_UNREACHABLE
            ) from None
        return response.status, response.reason, response.getheader(NEXT_PAGE_HEADER), raw

    def _token(self) -> str:
        if not self.token:
            raise CliError(
                "no admin token: set TETHER_ADMIN_TOKEN or pass --token "
                f"(tether up saves the first one to {default_token_file()})"
            )
        return self.token

    def lines(self, path: str, params: dict[str, str | None] | None = None) -> Iterator[bytes]:
        """A streamed answer (NDJSON), line by line."""
        with self.stream_lines(path, params) as (_headers, lines):
            yield from lines

    @contextmanager
    def stream_lines(
        self, path: str, params: dict[str, str | None] | None = None
    ) -> Iterator[tuple[httpx.Headers, Iterator[bytes]]]:
        """A streamed answer's headers and its lines; ``timeout`` bounds each read, not
        the whole stream, so a trail of any length streams through."""
        import httpx

        token = self._token()

        def each_line(response: httpx.Response) -> Iterator[bytes]:
            try:
                for line in response.iter_lines():
                    if line:
                        yield line.encode()
            except httpx.HTTPError as exc:
                raise CliError(
                    f"lost tether at {self.url} mid-stream: {exc!r} (a larger --timeout?)",
                    EXIT_UNREACHABLE,
                ) from None

        try:
            with httpx.stream(
                "GET",
                f"{self.url}/admin/v1{path}",
                params={k: v for k, v in (params or {}).items() if v is not None},
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout,
            ) as response:
                if response.is_error:
                    response.read()
                    try:
                        payload = response.json()
                    except ValueError:
                        payload = {}
                    raise _api_error(response.status_code, response.reason_phrase, payload)
                yield response.headers, each_line(response)
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach tether at {self.url}: {exc}", EXIT_UNREACHABLE) from None


def _api_error(status: int, reason: str, payload: Any) -> CliError:
    error = payload.get("error", {}) if isinstance(payload, dict) else {}
    message = error.get("message", reason)
    code = error.get("code", "error")
    details = "".join(
        f"\n  line {d.get('line')}, column {d.get('column')}: {d.get('message')}"
        for d in error.get("details") or []
        if isinstance(d, dict) and "column" in d
    )
    return CliError(f"{message} [{code}, HTTP {status}]{details}")
