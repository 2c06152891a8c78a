"""A fake Google Vertex AI for Claude, and a fake Google token endpoint.

``/v1/projects/{p}/locations/{r}/publishers/anthropic/models/{m}:rawPredict`` and
``:streamRawPredict`` answer the fake upstream's scripted replies (SSE as the Messages
API), ``count-tokens:rawPredict`` and ``{m}:countTokens`` count; errors are Google's JSON.
Every call needs ``Authorization: Bearer`` with an access token that ``/token`` issued
for a service account this fake made (``new_service_account``) — the JWT's RS256
signature is checked as Google checks it.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tether.fakes.anthropic import Framing, _estimate_input

if TYPE_CHECKING:
    from tether.fakes.anthropic import FakeAnthropic

__all__ = ["FakeVertex", "VertexFraming"]

VERTEX_VERSION = "vertex-2023-10-16"
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    529: "UNAVAILABLE",
}


def google_error(status: int, message: str, retry_after: int | None = None) -> web.Response:
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return web.json_response(
        {"error": {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}},
        status=status,
        headers=headers,
    )


class VertexFraming(Framing):
    def error(
        self, status: int, error_type: str, message: str, retry_after: int | None = None
    ) -> web.Response:
        return google_error(status, message, retry_after)


@dataclass
class IssuedToken:
    email: str
    expires_at: float


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class FakeVertex:
    def __init__(self, fake: FakeAnthropic) -> None:
        self.fake = fake
        self.token_seconds = 3600
        self.tokens: dict[str, IssuedToken] = {}
        self.assertions = 0
        self._public_keys: dict[str, rsa.RSAPublicKey] = {}

    def new_service_account(
        self, fake_url: str, project_id: str = "fake-gcp-project"
    ) -> dict[str, Any]:
        """A service-account key file (as the Google console gives it) whose tokens this
        fake issues: ``token_uri`` is this fake's ``/token``."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        email = f"tether-{secrets.token_hex(4)}@{project_id}.iam.gserviceaccount.com"
        self._public_keys[email] = key.public_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return {
            "type": "service_account",
            "project_id": project_id,
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": email,
            "client_id": str(secrets.randbelow(10**20)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": f"{fake_url}/token",
        }

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/token", self._token)
        app.router.add_post(
            "/v1/projects/{project}/locations/{region}/publishers/anthropic/models/{tail}",
            self._predict,
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        assertion = str(form.get("assertion", ""))
        try:
            head, claims_text, signature = assertion.split(".")
            claims = json.loads(_unb64(claims_text))
            public_key = self._public_keys[claims["iss"]]
            public_key.verify(
                _unb64(signature),
                f"{head}.{claims_text}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (ValueError, KeyError, InvalidSignature):
            return web.json_response(
                {"error": "invalid_grant", "error_description": "Invalid JWT Signature."},
                status=400,
            )
        if claims.get("exp", 0) < time.time():
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.assertions += 1
        token = f"ya29.fake-{secrets.token_urlsafe(24)}"
        self.tokens[token] = IssuedToken(claims["iss"], time.time() + self.token_seconds)
        return web.json_response(
            {"access_token": token, "expires_in": self.token_seconds, "token_type": "Bearer"}
        )

    async def _predict(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else {}
        except json.JSONDecodeError:
            return google_error(400, "Invalid JSON payload received.")
        self.fake.record(request, body if isinstance(body, dict) else {})
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        issued = self.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        if issued is None or issued.expires_at < time.time():
            return google_error(
                401, "Request had invalid authentication credentials. Expected OAuth 2 access token"
            )
        model, _, method = request.match_info["tail"].partition(":")
        if not isinstance(body, dict):
            return google_error(400, "the body must be a JSON object")
        if method == "countTokens" or model == "count-tokens":
            return web.json_response({"input_tokens": _estimate_input(body)})
        if method not in ("rawPredict", "streamRawPredict"):
            return google_error(404, f"method {method!r} not found")
        if not isinstance(body.get("anthropic_version"), str):
            return google_error(400, f"anthropic_version: required ({VERTEX_VERSION})")
        if "model" in body:
            return google_error(400, "model: Extra inputs are not permitted")
        stream = bool(body.get("stream")) or method == "streamRawPredict"
        return await self.fake.answer(request, body, model, stream, VertexFraming())
