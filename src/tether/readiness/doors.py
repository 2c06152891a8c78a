"""A drill canary's calls through the real front doors over HTTP: the Messages door (the
canary model tether answers itself), the Claude Code hook door and, when the project's
AWS broker is configured, the broker door (``sts:GetCallerIdentity``, SigV4-signed with
the canary's own broker key pair: free, touches no resource)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tether.gateway.anthropic.canary import CANARY_MODEL
from tether.gateway.aws.door import PREFIX as AWS_PREFIX
from tether.gateway.aws.door import SESSION_HEADER as AWS_SESSION_HEADER

__all__ = ["BrokerPair", "Canary", "Doors"]

STS_CALL = "Action=GetCallerIdentity&Version=2011-06-15"


@dataclass(frozen=True, slots=True)
class BrokerPair:
    access_key_id: str
    secret_access_key: str = ""
    region: str = "us-east-1"

    def __repr__(self) -> str:
        return f"BrokerPair({self.access_key_id!r})"


@dataclass
class Canary:
    agent_id: str
    name: str
    key: str
    session_id: str
    broker: BrokerPair | None = None
    """Its AWS key pair when the project's broker is configured (None: no broker door)."""

    @property
    def doors(self) -> tuple[str, ...]:
        return ("model", "hook", "broker") if self.broker else ("model", "hook")


class Doors:
    """The canary's calls at ``base_url``: each answers (open, why refused)."""

    def __init__(self, base_url: str) -> None:
        self._base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self._base_url, timeout=5.0)

    async def close(self) -> None:
        await self._client.aclose()

    async def model(self, key: str, session_id: str) -> tuple[bool, str]:
        response = await self._client.post(
            "/v1/messages",
            json={
                "model": CANARY_MODEL,
                "max_tokens": 1,
                "messages": [{"role": "user", "content": "drill"}],
            },
            headers={
                "x-api-key": key,
                "anthropic-version": "2023-06-01",
                "X-Claude-Code-Session-Id": session_id,
            },
        )
        if response.status_code == 200:
            return True, ""
        return False, response.text[:300]

    async def hook(self, key: str, session_id: str) -> tuple[bool, str]:
        response = await self._client.post(
            "/hooks/claude-code",
            json={
                "session_id": session_id,
                "hook_event_name": "UserPromptSubmit",
                "prompt": "drill",
            },
            headers={"Authorization": f"Bearer {key}"},
        )
        body: dict[str, Any] = response.json() if response.status_code == 200 else {}
        if response.status_code == 200 and body.get("continue", True) is not False:
            return True, ""
        return False, str(body.get("stopReason") or response.text[:300])

    async def broker(self, pair: BrokerPair, session_id: str) -> tuple[bool, str]:
        url = f"{self._base_url}{AWS_PREFIX}/"
        request = AWSRequest(
            method="POST",
            url=url,
            data=STS_CALL,
            headers={
                "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
                AWS_SESSION_HEADER: session_id,
            },
        )
        credentials = Credentials(pair.access_key_id, pair.secret_access_key)
        SigV4Auth(credentials, "sts", pair.region).add_auth(request)
        response = await self._client.post(url, content=STS_CALL, headers=dict(request.headers))
        if response.status_code == 200:
            return True, ""
        return False, response.text[:300]

    async def knock(self, door: str, canary: Canary) -> tuple[bool, str]:
        if door == "broker" and canary.broker is not None:
            return await self.broker(canary.broker, canary.session_id)
        if door == "hook":
            return await self.hook(canary.key, canary.session_id)
        return await self.model(canary.key, canary.session_id)

    async def all_open(self, canary: Canary) -> dict[str, tuple[bool, str]]:
        return {door: await self.knock(door, canary) for door in canary.doors}
