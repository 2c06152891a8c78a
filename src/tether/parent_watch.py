"""A child process that notices its parent is gone. Python's multiprocessing children do
not: a heavy-work worker waits on its call queue for ever (it holds the queue's write end
itself), a forked server worker goes on serving the port beside the workers a restarted
supervisor starts. The kernel hands an orphan to another parent, which is how it knows."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

__all__ = ["CHECK_SECONDS", "when_orphaned"]

CHECK_SECONDS = 0.5
"""How often the parent is looked for: an orphan acts within this long."""


def when_orphaned(parent: int, act: Callable[[], None]) -> None:
    """Calls ``act`` once, on a daemon thread, when process ``parent`` is no longer this
    process's parent (already gone when this is called included)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(CHECK_SECONDS)
        act()

    threading.Thread(target=watch, name="tether-parent-watch", daemon=True).start()
