"""The simulated fleet of ``tether demo``: five agents in two projects, each playing one
story operators meet, all through tether's real front doors with their own keys."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

__all__ = ["DEMO_POLICY", "Fleet", "FleetAgent", "setup_fleet"]

MODEL = "claude-sonnet-4"
DEMO_POLICY = """\
@id("dev-files")
permit(principal, action, resource)
when { resource.kind == "file" && resource.tags.env == "dev" };

@id("no-prod")
@reason("production is off limits to agents")
forbid(principal, action, resource)
when { resource.tags.env == "prod" };
"""
PROJECTS = {"payments": DEMO_POLICY, "research": None}
AGENTS = {
    "retry-loop": ("payments", "retries a failing deploy step, the classic 73-retries loop"),
    "prod-cleaner": ("payments", "tries to delete a production database directory"),
    "cache-janitor": ("payments", "deletes dev build caches, each one after a human says yes"),
    "summarizer": ("research", "summarises long documents until its session budget runs out"),
    "reviewer": ("research", "a healthy agent: small calls, steady pace"),
}
SESSION_LIMIT_USD = 0.05


@dataclass(frozen=True, slots=True)
class FleetAgent:
    name: str
    key: str


async def setup_fleet(admin: httpx.AsyncClient, upstream_key: str) -> dict[str, FleetAgent]:
    """Projects, policies, budgets and agents through the admin API; the agents' keys."""

    async def call(method: str, path: str, body: dict[str, Any]) -> Any:
        response = await admin.request(method, path, json=body)
        response.raise_for_status()
        return response.json()

    for project, policy in PROJECTS.items():
        await call("POST", "/projects", {"name": project, "default_budgets": False})
        await call("PUT", f"/projects/{project}/credentials/anthropic", {"secret": upstream_key})
        if policy:
            await call("PUT", f"/projects/{project}/policy", {"source": policy})
            await call("PATCH", f"/projects/{project}/guards", {"on_trip": "terminate"})
        await call("PUT", "/budgets", {"project": project, "period": "daily", "limit_usd": 2})
    await call(
        "PUT",
        "/budgets",
        {"project": "research", "period": "session", "limit_usd": SESSION_LIMIT_USD},
    )
    agents = {}
    for name, (project, description) in AGENTS.items():
        made = await call(
            "POST", "/agents", {"name": name, "project": project, "description": description}
        )
        agents[name] = FleetAgent(name, made["key"])
    return agents


def _message(text: str, max_tokens: int = 300) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": text}],
    }


class Fleet:
    """Runs every agent's story until cancelled; refusals are the point, not errors."""

    def __init__(self, url: str, agents: dict[str, FleetAgent], pace: float = 1.0) -> None:
        self._client = httpx.AsyncClient(base_url=url, timeout=30)
        self._agents = agents
        self._pace = pace

    async def run(self) -> None:
        stories = [
            self._retry_loop(self._agents["retry-loop"]),
            self._prod_cleaner(self._agents["prod-cleaner"]),
            self._cache_janitor(self._agents["cache-janitor"]),
            self._summarizer(self._agents["summarizer"]),
            self._reviewer(self._agents["reviewer"]),
        ]
        try:
            await asyncio.gather(*stories)
        finally:
            await self._client.aclose()

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self._pace)

    async def _messages(
        self, agent: FleetAgent, session: str, body: dict[str, Any], retry: int = 0
    ) -> httpx.Response:
        headers = {
            "x-api-key": agent.key,
            "anthropic-version": "2023-06-01",
            "X-Tether-Session-Id": session,
            "X-Stainless-Retry-Count": str(retry),
        }
        return await self._client.post("/v1/messages", json=body, headers=headers)

    async def _authorize(
        self, agent: FleetAgent, session: str, action: str, resource: str, env: str
    ) -> httpx.Response:
        body = {"session_id": session, "action": action, "resource": resource, "tags": {"env": env}}
        headers = {"Authorization": f"Bearer {agent.key}"}
        return await self._client.post("/v1/authorize", json=body, headers=headers)

    async def _retry_loop(self, agent: FleetAgent) -> None:
        """The same failing deploy step, retried up to 73 times: the guards stop it."""
        body = _message("The deploy failed with exit code 1. Run `make deploy` again.")
        while True:
            session = f"deploy-{uuid.uuid4().hex[:8]}"
            for retry in range(73):
                answer = await self._messages(agent, session, body, retry)
                if answer.status_code >= 400:
                    break
                await self._pause(0.4)
            await self._pause(45)

    async def _prod_cleaner(self, agent: FleetAgent) -> None:
        session = f"cleanup-{uuid.uuid4().hex[:8]}"
        while True:
            await self._messages(agent, session, _message("Free disk space on the db host."))
            await self._authorize(agent, session, "file:Delete", "/srv/prod/payments/db", "prod")
            await self._pause(20)

    async def _cache_janitor(self, agent: FleetAgent) -> None:
        """Asks to delete one dev cache at a time and waits for the answer, then the next."""
        session = f"janitor-{uuid.uuid4().hex[:8]}"
        for build in itertools.count(101):
            path = f"/srv/dev/cache/build-{build}"
            await self._messages(agent, session, _message(f"Clean up {path}."))
            while True:
                answer = await self._authorize(agent, session, "file:Delete", path, "dev")
                if answer.status_code != 202:
                    break
                await self._pause(3)
            await self._pause(10)

    async def _summarizer(self, agent: FleetAgent) -> None:
        """Long prompts until the per-session limit refuses one; later, a new session."""
        document = "Quarterly report, section {n}. " + "Revenue rose in every region. " * 400
        while True:
            session = f"summary-{uuid.uuid4().hex[:8]}"
            for n in itertools.count(1):
                answer = await self._messages(
                    agent, session, _message(f"Summarise: {document.format(n=n)}", 1024)
                )
                if answer.status_code >= 400:
                    break
                await self._pause(2)
            await self._pause(60)

    async def _reviewer(self, agent: FleetAgent) -> None:
        session = f"review-{uuid.uuid4().hex[:8]}"
        for n in itertools.count(1):
            with contextlib.suppress(httpx.HTTPError):
                await self._messages(agent, session, _message(f"Review pull request #{n}.", 200))
            await self._pause(2)
