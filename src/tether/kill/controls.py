"""Fleet-wide switches as the hot path sees them: in memory, refreshed by the change feed."""

from __future__ import annotations

from tether.store.changes import Change
from tether.store.controls import Control, ControlStore

__all__ = ["PAUSE_ALL", "FleetControls"]

PAUSE_ALL = "pause_all"


class FleetControls:
    def __init__(self, store: ControlStore) -> None:
        self._store = store
        self._controls: dict[str, Control] = {}

    async def load(self) -> None:
        self._controls = await self._store.all()

    async def apply(self, change: Change) -> None:
        if change.kind == "control":
            await self.load()

    @property
    def pause_all(self) -> Control | None:
        control = self._controls.get(PAUSE_ALL)
        return control if control is not None and control.value == "on" else None

    async def set_pause_all(self, paused: bool, by: str, reason: str) -> None:
        await self._store.set(PAUSE_ALL, "on" if paused else "off", by, reason)
