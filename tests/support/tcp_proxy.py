"""A TCP forwarder on a free loopback port that a test can cut, to make a database
unreachable, or make lose or hold up one reply."""

from __future__ import annotations

import asyncio
import contextlib
import threading

LOST = -1.0


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._reply_fault: tuple[bytes, float] | None = None
        """What marks the request whose reply is faulted, and the seconds to hold that reply
        up (``LOST``: swallow it and drop its connection)."""
        self.fault_taken = threading.Event()
        """Set once the request a fault waits for has come (the fault is under way)."""
        self.reads_from_clients = 0
        """Reads of what clients sent: for a client that waits for each reply before it
        sends again, its round trips."""

    def start(self) -> CuttableProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)
        return self

    def cut(self) -> None:
        """Refuse new connections and drop every open one."""
        asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(5)

    def lose_reply_to(self, marker: bytes) -> None:
        """The reply to the next request holding ``marker`` is swallowed and its connection
        dropped: the target acted on the request; its sender cannot know."""
        self.fault_taken.clear()
        self._loop.call_soon_threadsafe(setattr, self, "_reply_fault", (marker, LOST))

    def hold_reply_to(self, marker: bytes, seconds: float) -> None:
        self.fault_taken.clear()
        self._loop.call_soon_threadsafe(setattr, self, "_reply_fault", (marker, seconds))

    def restore(self) -> None:
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(5)

    def close(self) -> None:
        self.cut()
        asyncio.run_coroutine_threadsafe(self._finish_tasks(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _finish_tasks(self) -> None:
        """Connections still piping (a reply held up) end here, not with the loop."""
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _listen(self) -> None:
        if self._server is not None:
            return
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update({writer, up_writer})

        faulted: list[float] = []
        """The fault for this connection's next reply (its requests are one at a time)."""

        async def pipe(
            src: asyncio.StreamReader, dst: asyncio.StreamWriter, replies: bool = False
        ) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    if not replies:
                        self.reads_from_clients += 1
                    fault = self._reply_fault
                    if not replies and fault is not None and fault[0] in data:
                        self._reply_fault = None
                        faulted.append(fault[1])
                        self.fault_taken.set()
                    if replies and faulted:
                        if (seconds := faulted.pop()) == LOST:
                            up_writer.transport.abort()
                            break
                        await asyncio.sleep(seconds)
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer, replies=True))
        self._writers.discard(writer)
        self._writers.discard(up_writer)
