"""A fake OAuth 2.0 token endpoint (client credentials grant) on loopback: it counts the
token requests it answers and says which access tokens are currently valid, so an MCP
server can require one of them."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from tests.support.server import free_port


@dataclass
class FakeTokenEndpoint:
    url: str
    client_id: str
    client_secret: str
    lifetime: float
    issued: dict[str, float] = field(default_factory=dict)
    """access token → when it expires (monotonic)."""
    forms: list[dict[str, str]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    """Tokens ``valid`` said no to (what the MCP server answered 401 to)."""
    refuse_clients: bool = False
    _server: ThreadingHTTPServer | None = None

    @property
    def requests(self) -> int:
        return len(self.forms)

    def valid(self, token: str) -> bool:
        expires = self.issued.get(token)
        if expires is not None and time.monotonic() < expires:
            return True
        self.refused.append(token)
        return False

    def revoke_all(self) -> None:
        self.issued.clear()

    def credential(self, **extra: str) -> str:
        """The JSON an operator pipes into ``tether mcp add --auth oauth``."""
        return json.dumps(
            {
                "token_url": self.url,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                **extra,
            }
        )

    def answer(self, authorization: str, form: dict[str, str]) -> tuple[int, dict[str, object]]:
        self.forms.append(form)
        expected = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        if self.refuse_clients or authorization != f"Basic {expected}":
            return 401, {"error": "invalid_client", "error_description": "unknown client"}
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        token = f"access-{uuid.uuid4().hex}"
        self.issued[token] = time.monotonic() + self.lifetime
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def start_token_endpoint(lifetime: float = 3600) -> FakeTokenEndpoint:
    port = free_port()
    endpoint = FakeTokenEndpoint(
        f"http://127.0.0.1:{port}/oauth/token",
        f"client-{uuid.uuid4().hex[:8]}",
        f"client-secret-{uuid.uuid4().hex}",
        lifetime,
    )

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            fields = parse_qs(self.rfile.read(length).decode())
            form = {name: values[0] for name, values in fields.items()}
            status, body = endpoint.answer(self.headers.get("Authorization", ""), form)
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    endpoint._server = server
    threading.Thread(target=server.serve_forever, daemon=True, name="oauth-endpoint").start()
    return endpoint
