"""The one heavy-work lane of an app: every door that reads large bodies (the hook door,
``/v1/authorize``) shares its worker process. Apart from ``heavy_work`` so that the
workers, which import that module, never import aiohttp."""

from __future__ import annotations

from aiohttp import web

from tether.web.heavy_work import HeavyWork

__all__ = ["HEAVY_WORK_KEY", "heavy_work_of"]

HEAVY_WORK_KEY = web.AppKey("heavy_work", HeavyWork)


def heavy_work_of(app: web.Application, preload: tuple[str, ...]) -> HeavyWork:
    """``app``'s lane, made on first use and closed with the app; its workers also
    import ``preload`` at start."""
    lane = app.get(HEAVY_WORK_KEY)
    if lane is None:
        app[HEAVY_WORK_KEY] = lane = HeavyWork()

        async def close(_app: web.Application) -> None:
            lane.close()

        app.on_cleanup.append(close)
    lane.also_preload(preload)
    return lane
