"""Shadow policy overhead: the CPU the policy stage spends per decision with a shadow
candidate decided beside the policy in force, against the same stage without one (the
baseline, in the same run, rounds interleaved). Target: ≤ 0.05 ms CPU per decision.

Two workloads: *repeated* (the same few questions, as an agent's loop asks them: both
policies answer from their per-version memory) and *distinct* (every question new: the
shadow costs one more Cedar evaluation each).

    uv run python bench/policy_shadow_bench.py [--decisions 20000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import inprocess_runtime
from policy_bench import realistic_policy

from tether.pipeline import Action
from tether.pipeline.action import Context
from tether.pipeline.stages.policy import EnforcePolicy

SHADOW_EXTRA = """
@id("no-ml-writes") forbid(principal, action == Action::"s3:PutObject", resource)
  when { resource.arn like "arn:aws:s3:::ml-*" };
"""
REPEATED = [
    ("s3:GetObject", "arn:aws:s3:::ml-dev-features/x", {}),
    ("s3:PutObject", "arn:aws:s3:::ml-dev-features/y", {}),
    ("file:Write", "/srv/app/x", {"env": "dev"}),
    ("file:Write", "/srv/app/x", {"env": "prod"}),
    ("iam:DeleteRole", "arn:aws:iam:::role/admin", {}),
]


def workload(kind: str, n: int, batch: int) -> list[Action]:
    """``distinct``: questions never asked before (``batch`` keeps each call's apart)."""
    actions = []
    for i in range(n):
        name, resource, tags = REPEATED[i % len(REPEATED)]
        if kind == "distinct":
            resource = f"{resource}/{batch}-{i}"
        actions.append(Action("bench", None, name, resource, tags=tags, session_id="s"))
    return actions


async def cpu_ms_per_decision(
    stage: EnforcePolicy, make_ctx: Callable[[], Context], actions: list[Action]
) -> float:
    started = time.process_time()
    for action in actions:
        await stage.check(action, make_ctx())
    return (time.process_time() - started) * 1000 / len(actions)


async def run(n: int, rounds: int, workdir: Path) -> None:
    runtime = await inprocess_runtime(workdir)
    try:
        project = await runtime.projects.create("bench")
        _, issued = await runtime.agents.create("agent-1", project.id, "")
        await runtime.policy_store.add(project.id, realistic_policy(), "bench")
        await runtime.feed.catch_up()
        await runtime.directory.load()
        identity = await runtime.directory.identify_agent(issued.secret)
        stage = EnforcePolicy(runtime.policies)

        def make_ctx() -> Context:
            return Context(identity=identity)

        shadow_source = realistic_policy() + SHADOW_EXTRA
        print(f"policy stage, {n:,} decisions per round, best of {rounds} rounds; load average "
              f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")  # fmt: skip
        for kind in ("repeated", "distinct"):
            base, shadowed = [], []
            differences = 0
            for r in range(rounds):
                await runtime.policy_shadows.clear(project.id)
                await runtime.feed.catch_up()
                actions = workload(kind, n, 2 * r)
                base.append(await cpu_ms_per_decision(stage, make_ctx, actions))
                await runtime.policy_shadows.put(project.id, shadow_source, "bench")
                await runtime.feed.catch_up()
                assert runtime.policies.shadow(project.id) is not None
                actions = workload(kind, n, 2 * r + 1)
                shadowed.append(await cpu_ms_per_decision(stage, make_ctx, actions))
                ctx = make_ctx()
                await stage.check(actions[1], ctx)
                differences += "shadow" in ctx.notes
            added = min(shadowed) - min(base)
            print(f"  {kind:<9} without shadow (baseline) {min(base):7.4f} ms CPU/decision")
            print(f"  {kind:<9} with shadow               {min(shadowed):7.4f} ms CPU/decision"
                  f"   added {added:+.4f} ms  (target ≤ 0.05)")  # fmt: skip
            assert differences == rounds, "the shadow's difference was not recorded"
    finally:
        await runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(run(args.decisions, args.rounds, Path(tmp)))


if __name__ == "__main__":
    main()
