"""``TETHER_DRILL_EVERY``: every project drilled on a schedule, failures alerted.

A drill that fails or is slower than its target (kill < 1 s, audit window < 10 s) queues
a ``drill.failed`` alert to the project's webhooks, like a guard trip; every run is a
``drill:*`` audit event the readiness checks read."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from tether.errors import TetherError
from tether.readiness.drills import DRILLS, DrillReport, run_drill

if TYPE_CHECKING:
    from tether.runtime import Runtime

__all__ = ["DrillSchedule"]

log = logging.getLogger(__name__)


class DrillSchedule:
    def __init__(self, runtime: Runtime, every_seconds: float, door_url: str) -> None:
        self._runtime = runtime
        self._every = every_seconds
        self._door_url = door_url
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name="drill schedule")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _forever(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            await self.run_once()

    async def run_once(self) -> list[DrillReport]:
        """Every drill on every project not paused; a failure alerts, never raises."""
        reports = []
        for project in await self._runtime.projects.all():
            if project.paused:
                continue
            for kind in DRILLS:
                try:
                    report = await run_drill(self._runtime, project, kind, self._door_url)
                except TetherError as exc:
                    report = DrillReport(kind, project.name)
                    report.fail(exc.message)
                reports.append(report)
                if not report.ok:
                    await self._alert(project.id, report)
        return reports

    async def _alert(self, project_id: str, report: DrillReport) -> None:
        summary = f"the {report.drill} drill of project {report.project} failed: " + "; ".join(
            report.notes
        )
        log.warning("%s", summary)
        try:
            await self._runtime.alert_store.notify(
                project_id,
                "drill.failed",
                {
                    "summary": summary,
                    "project": report.project,
                    "drill": report.drill,
                    "seconds": report.seconds,
                    "timings": report.timings,
                },
            )
        except TetherError as exc:
            log.warning("drill alert not queued: %s", exc.message)
