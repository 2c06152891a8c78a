"""Readiness checks read from how agents actually used tether: a key used from several
client addresses at once, cloud commands run around the broker, MCP servers reached
around tether. Each reads a small table or an index range, never the whole trail."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from tether.clock import now_ms
from tether.connect.claude_code import MCP_SERVER_NAME
from tether.readiness.results import CheckResult, Status
from tether.store.key_addresses import KeyAddressStore
from tether.store.readiness import ReadinessQueries

if TYPE_CHECKING:
    from tether.records.fleet import Project
    from tether.runtime import Runtime

__all__ = ["USAGE_WINDOW_MS", "cloud_through_broker", "mcp_through_tether", "shared_keys"]

USAGE_WINDOW_MS = 7 * 86_400_000
SWITCHES_SUGGESTING_SHARING = 2
"""Uses of one key alternating between addresses within an hour (A, B, A is two
switches): a laptop changing networks switches once; two users sharing a key keep
switching."""
HOURS_SUGGESTING_SHARING = 3
"""Or: two or more addresses in the same hour on this many hours of the week (a load
balancer that keeps each address on one replica hides the switches from each replica)."""


async def shared_keys(runtime: Runtime, project: Project) -> CheckResult:
    since = now_ms() - USAGE_WINDOW_MS
    agents = {a.id: a.name for a in await runtime.agents.all(project.id)}
    keys = {
        k.id: (k.agent_id, f"{k.prefix}…")
        for k in await runtime.agents.live_keys()
        if k.agent_id in agents
    }
    keys |= {
        k.id: (k.agent_id, f"AWS {k.access_key_id}")
        for k in await runtime.aws_keys.live_of(list(agents))
    }
    store = KeyAddressStore(runtime.db)
    hours = await store.shared_hours(list(keys), since)
    switches: Counter[str] = Counter()
    crowded: Counter[str] = Counter()
    for hour in hours:
        switches[hour.key_id] += hour.switches
        crowded[hour.key_id] += 1
    suspects = [
        k
        for k in keys
        if switches[k] >= SWITCHES_SUGGESTING_SHARING or crowded[k] >= HOURS_SUGGESTING_SHARING
    ]
    if not suspects:
        return CheckResult(
            "shared_keys",
            Status.PASS,
            f"no key of the {len(agents)} agents was used from several client addresses at once "
            "in 7 days",
        )
    worst_key = max(suspects, key=lambda k: (switches[k], crowded[k]))
    agent_id, shown = keys[worst_key]
    name = agents.get(agent_id, agent_id)
    addresses = await store.addresses(worst_key, since)
    first = min(h.hour for h in hours if h.key_id == worst_key)
    when = datetime.fromtimestamp(first / 1000, UTC).strftime("%Y-%m-%d %H:00 UTC")
    others = f" (and {len(suspects) - 1} more key(s))" if len(suspects) > 1 else ""
    return CheckResult(
        "shared_keys",
        Status.WARN,
        f"key {shown} of {name} was used from {', '.join(addresses)} alternately "
        f"({switches[worst_key]} switches in {crowded[worst_key]} hour(s) since {when}): "
        f"it looks shared{others}",
        f"tether agents create NAME -p {project.name} (one agent per user), "
        f"then tether keys rotate {name}",
    )


async def cloud_through_broker(runtime: Runtime, project: Project) -> CheckResult:
    since = now_ms() - USAGE_WINDOW_MS
    calls = await ReadinessQueries(runtime.db).hook_cloud_calls(project.id, since)
    holders = {k.agent_id for k in await runtime.aws_keys.live_of(list(calls))}
    around = {}
    for agent_id, count in calls.items():
        if agent_id not in holders:
            agent = runtime.directory.agent(agent_id)
            around[agent.name if agent else agent_id] = count
    if not calls:
        return CheckResult(
            "cloud_broker", Status.PASS, "hooks saw no cloud (aws) commands in 7 days"
        )
    if not around:
        return CheckResult(
            "cloud_broker",
            Status.PASS,
            f"{sum(calls.values())} cloud commands in 7 days, all from agents with broker keys",
        )
    name, count = max(around.items(), key=lambda item: item[1])
    return CheckResult(
        "cloud_broker",
        Status.WARN,
        f"hooks saw {sum(around.values())} aws commands in 7 days from agents without broker "
        f"keys ({', '.join(f'{n}: {c}' for n, c in sorted(around.items()))}): they reach the "
        "cloud with credentials of their own, around tether's broker",
        f"tether agents aws-keys {name} (and point the agent's AWS_ENDPOINT_URL at tether)",
    )


async def mcp_through_tether(runtime: Runtime, project: Project) -> CheckResult:
    since = now_ms() - USAGE_WINDOW_MS
    calls = await ReadinessQueries(runtime.db).hook_mcp_calls(project.id, since)
    by_server: Counter[str] = Counter()
    for resource, count in calls.items():
        server = resource.removeprefix("mcp://").split("/", 1)[0]
        by_server[server] += count
    registered = {s.name for s in await runtime.mcp_servers.of_project(project.id)}
    around = {s: c for s, c in by_server.items() if s not in registered and s != MCP_SERVER_NAME}
    if not around:
        seen = f"{len(by_server)} MCP server(s) used in 7 days" if by_server else "no MCP calls"
        return CheckResult(
            "mcp_servers",
            Status.PASS,
            f"{seen}, all registered with tether" if by_server else f"hooks saw {seen} in 7 days",
        )
    server = max(around, key=lambda s: around[s])
    return CheckResult(
        "mcp_servers",
        Status.WARN,
        "hooks saw MCP tool calls to servers not registered with tether: "
        + ", ".join(f"{s} ({c} calls)" for s, c in sorted(around.items()))
        + "; their calls and credentials bypass tether",
        f"tether mcp add -p {project.name} {server} --url URL",
    )
