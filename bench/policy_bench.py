"""Policy decision benchmark: how long tether takes to decide an action, in one run.

1. Cedar alone: ``CompiledPolicy.evaluate`` on a 20-rule policy, against the raw
   ``cedarpy.is_authorized`` call with the same pre-parsed policy set (baseline).
2. In-process pipeline: ``Pipeline.decide`` (identify, session, kill switch, policy,
   approval, budget; the audit event durable before it returns) against the same pipeline
   without the policy and approval stages (baseline).
3. Through ``POST /v1/authorize`` on a real ``tether up`` (SQLite): allowed and denied
   decisions, one keep-alive connection, against ``GET /healthz`` on the same connection.

    uv run python bench/policy_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import cedarpy
import httpx
from harness import free_port, inprocess_runtime, report, timed

from tether.guards.settings import GuardSettings
from tether.pipeline import Action, Pipeline
from tether.pipeline.stages.approval import RequireApproval
from tether.pipeline.stages.policy import EnforcePolicy
from tether.policy.compiled import compile_policy
from tether.policy.request import PolicyRequest

ADMIN_TOKEN = "tta_bench_policy_admin_token_0123456789"


def realistic_policy() -> str:
    rules = []
    for team in ("payments", "search", "ml", "web", "data", "infra", "mobile", "ops"):
        rules.append(
            f'permit(principal, action in Action::"s3:*", resource)\n'
            f'when {{ resource.arn like "arn:aws:s3:::{team}-dev-*" }};'
        )
    for env in ("dev", "test", "staging"):
        rules.append(
            'permit(principal, action in [Action::"file:Write", Action::"file:Read"], resource)\n'
            f'when {{ resource.tags.env == "{env}" }};'
        )
    rules += [
        '@reason("production is off limits")\n'
        'forbid(principal, action, resource) when { resource.tags.env == "prod" };',
        'forbid(principal, action in Action::"iam:*", resource);',
        'forbid(principal, action, resource) when { resource.arn like "arn:aws:s3:::*-prod-*" };',
        '@ask("shared buckets are reviewed")\n'
        'permit(principal, action == Action::"s3:PutObject", resource)\n'
        'when { resource.arn like "arn:aws:s3:::shared-*" };',
        'permit(principal, action == Action::"db:Query", resource)\n'
        'when { resource.arn like "postgres://replica/*" };',
        'permit(principal, action == Action::"tool:Bash", resource)\n'
        'when { resource.arn like "command:make *" };',
        'permit(principal in Project::"bench", action == Action::"web:Fetch", resource)\n'
        'when { resource.arn like "https://docs.*" };',
        'forbid(principal, action in Action::"delete", resource)\n'
        'when { resource.arn like "arn:aws:s3:::payments-*" };',
        'permit(principal, action == Action::"git:Push", resource);',
    ]
    return "\n\n".join(rules) + "\n"


REQUESTS = [
    ("s3:GetObject", "arn:aws:s3:::ml-dev-features/x", {}),
    ("s3:GetObject", "arn:aws:s3:::ml-prod-features/x", {}),
    ("file:Write", "/srv/app/x", {"env": "dev"}),
    ("file:Write", "/srv/app/x", {"env": "prod"}),
    ("iam:DeleteRole", "arn:aws:iam:::role/admin", {}),
]


def bench_cedar(n: int) -> None:
    compiled = compile_policy(realistic_policy())
    handle = cedarpy.PolicySet.from_str(realistic_policy())
    prepared = []
    for action, resource, tags in REQUESTS:
        request = PolicyRequest("agent-1", "bench", action, resource, tags)
        prepared.append((request, request.cedar_request(), json.dumps(request.entities())))
    ours, raw = [], []
    for i in range(n):
        request, cedar_request, entities = prepared[i % len(prepared)]
        started = time.perf_counter()
        compiled.evaluate(request)
        ours.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        cedarpy.is_authorized(cedar_request, handle, entities)
        raw.append((time.perf_counter() - started) * 1000)
    print(f"1. Cedar, {len(compiled.rules) - 1} rules, {n} decisions each")
    report("cedarpy.is_authorized (baseline)", raw)
    report("CompiledPolicy.evaluate", ours, raw)


async def bench_pipeline(n: int, workdir: Path) -> None:
    runtime = await inprocess_runtime(workdir)
    try:
        project = await runtime.projects.create("bench")
        _, issued = await runtime.agents.create("agent-1", project.id, "")
        await runtime.policy_store.add(project.id, realistic_policy(), "bench")
        quiet = GuardSettings(repeat_limit=None).to_json()
        await runtime.projects.update(project.id, {"guards": quiet})
        await runtime.feed.catch_up()
        await runtime.directory.load()
        without = Pipeline(
            [
                s
                for s in runtime.pipeline.stages
                if not isinstance(s, EnforcePolicy | RequireApproval)
            ],
            runtime.audit,
        )

        def action(name: str, resource: str) -> Action:
            return Action("bench", issued.secret, name, resource, session_id="bench-session")

        allowed = ("s3:GetObject", "arn:aws:s3:::ml-dev-features/x")
        denied = ("s3:GetObject", "arn:aws:s3:::ml-prod-features/x")
        for _ in range(200):
            await runtime.pipeline.decide(action(*allowed))
            await without.decide(action(*allowed))
        base = await timed(n, lambda _: without.decide(action(*allowed)))
        ok = await timed(n, lambda _: runtime.pipeline.decide(action(*allowed)))
        no = await timed(n, lambda _: runtime.pipeline.decide(action(*denied)))
        assert (await runtime.pipeline.decide(action(*allowed))).allowed
        assert not (await runtime.pipeline.decide(action(*denied))).allowed
        print(f"2. Pipeline.decide in-process (SQLite, durable audit), {n} decisions each")
        report("without policy/approval stages (baseline)", base)
        report("allowed by policy", ok, base)
        report("denied by policy", no, base)
    finally:
        await runtime.stop()


async def bench_http(n: int, workdir: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TETHER_")},
        "TETHER_DATA_DIR": str(workdir / "server"),
        "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
        "TETHER_PORT": str(port),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "up"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base_url}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "tether did not come up"
                time.sleep(0.1)
        admin = httpx.Client(
            base_url=f"{base_url}/admin/v1", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        admin.post("/projects", json={"name": "bench"}).raise_for_status()
        admin.put("/projects/bench/policy", json={"source": realistic_policy()}).raise_for_status()
        admin.patch("/projects/bench/guards", json={"repeat_limit": None}).raise_for_status()
        key = admin.post("/agents", json={"name": "agent-1", "project": "bench"}).json()["key"]
        headers = {"Authorization": f"Bearer {key}"}
        allowed = {"session_id": "b", "action": "s3:GetObject", "resource": "arn:aws:s3:::ml-dev-x"}
        denied = {**allowed, "resource": "arn:aws:s3:::ml-prod-x"}
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session:

            async def post(body: dict[str, str], status: int) -> None:
                async with session.post(
                    f"{base_url}/v1/authorize", json=body, headers=headers
                ) as r:
                    await r.read()
                    assert r.status == status, r.status

            async def health() -> None:
                async with session.get(f"{base_url}/healthz") as r:
                    await r.read()

            for _ in range(200):
                await post(allowed, 200)
                await health()
            base = await timed(n, lambda _: health())
            ok = await timed(n, lambda _: post(allowed, 200))
            no = await timed(n, lambda _: post(denied, 403))
        print(f"3. POST /v1/authorize on `tether up` (SQLite), one connection, {n} requests each")
        report("GET /healthz (baseline)", base)
        report("allow", ok, base)
        report("deny (403)", no, base)
        mean = statistics.mean(ok)
        print(f"   mean allow {mean:.3f} ms -> {1000 / mean:,.0f} decisions/s, one at a time")
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args()
    n_cedar, n_pipe, n_http = (2_000, 500, 500) if args.quick else (20_000, 3_000, 3_000)
    with tempfile.TemporaryDirectory(prefix="tether-policy-bench-") as tmp:
        workdir = Path(tmp)
        bench_cedar(n_cedar)
        asyncio.run(bench_pipeline(n_pipe, workdir))
        asyncio.run(bench_http(n_http, workdir))


if __name__ == "__main__":
    main()
