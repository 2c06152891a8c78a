"""Guard benchmark: what the runaway-loop guards add to a decision, in one run.

``Pipeline.decide`` in-process (SQLite, the audit event durable before it returns) with every
guard on (repeat window holding 1,000 distinct calls of the session, breaker, retries)
against the same pipeline without the guards stage (baseline). Then the stage's own
``check`` + ``settle`` alone, against an empty coroutine.

    uv run python bench/guards_bench.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from harness import inprocess_runtime, report, timed

from tether.pipeline import Action, Outcome, Pipeline, ToolUse
from tether.pipeline.action import Context
from tether.pipeline.stages.guards import EnforceGuards


async def nothing() -> None:
    return None


async def bench(n: int, workdir: Path) -> None:
    runtime = await inprocess_runtime(workdir)
    try:
        project = await runtime.projects.create("bench")
        _, issued = await runtime.agents.create("agent-1", project.id, "")
        await runtime.policy_store.add(project.id, "permit(principal, action, resource);", "b")
        await runtime.feed.catch_up()
        await runtime.directory.load()
        guards = next(s for s in runtime.pipeline.stages if isinstance(s, EnforceGuards))
        without = Pipeline([s for s in runtime.pipeline.stages if s is not guards], runtime.audit)

        def action(i: int) -> Action:
            return Action(
                "bench", issued.secret, "s3:GetObject", f"arn:aws:s3:::b/{i % 1000}",
                session_id="bench-session",
            )  # fmt: skip

        for i in range(200):
            await runtime.pipeline.decide(action(i))
            await without.decide(action(i))
        base = await timed(n, lambda i: without.decide(action(i)))
        full = await timed(n, lambda i: runtime.pipeline.decide(action(i)))
        print(f"1. Pipeline.decide in-process (SQLite, durable audit), {n} decisions each")
        report("without the guards stage (baseline)", base)
        report("with every guard on", full, base)

        decided = await runtime.pipeline.decide(action(0))
        ctx = decided.context or Context()
        model = Action("bench", issued.secret, "model:messages", "anthropic:model/m")
        empty = await timed(n, lambda i: nothing())

        async def stage_alone(i: int) -> None:
            """Steady state: a new tool call each time, so nothing trips."""
            outcome = Outcome(
                result="ok", status=200, latency_ms=1.0,
                tool_uses=[ToolUse("t", "Bash", {"command": f"pytest -k case_{i}"})],
            )  # fmt: skip
            if await guards.check(action(i), ctx) is not None:
                raise AssertionError("a guard tripped in the steady-state benchmark")
            await guards.settle(model, ctx, outcome)

        alone = await timed(n, stage_alone)
        print(f"2. EnforceGuards.check + settle alone, {n} calls")
        report("empty coroutine (baseline)", empty)
        report("check (repeat window) + settle (tool use)", alone, empty)
    finally:
        await runtime.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 500 if args.quick else 3000
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(bench(n, Path(workdir)))


if __name__ == "__main__":
    main()
