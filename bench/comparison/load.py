"""The load: closed-loop (N clients, each sending its next request when the last one is
answered: the maximum throughput) and open-loop (requests sent on a fixed schedule whatever
the answers: latency at a given rate, or the verdict that the rate was not sustained).

Open-loop latency counts from the request's scheduled time, so a server (or a load
generator) that falls behind shows it instead of quietly sending less. A phase is
*overloaded* when the backlog passes half a second of requests, when the requests are not
all answered within a grace period after the last was due, when the answers come at under
90 % of the rate (from the first request to the last answer, less one median latency), or
when more than 1 % fail; it then has no latency figure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from comparison.http1 import Pool, request_bytes

MODEL = "claude-sonnet-5"


@dataclass(frozen=True)
class Endpoint:
    """Where and how to send a Messages request to one server."""

    host: str
    port: int
    headers: dict[str, str]
    session_header: str | None = None
    """Sent with a new value every phase (a session per phase), unless None."""
    path: str = "/v1/messages"
    wire: str = "messages"
    """``messages``, ``bedrock`` (the model in the path, the stream its own operation),
    ``converse`` (Bedrock's Converse body) or ``vertex`` (the model in the path): the same
    request in each door's form."""


VERTEX_PATH = "/vertex/v1/projects/bench/locations/us-east5/publishers/anthropic/models"


@dataclass
class Phase:
    """What one bounded run of load measured (latencies in ms, CPU in seconds)."""

    kind: str
    stream: bool
    rate: int = 0
    concurrency: int = 0
    sent: int = 0
    ok: int = 0
    errors: int = 0
    elapsed: float = 0.0
    latencies_ms: list[float] = field(default_factory=list, repr=False)
    overloaded: str = ""
    skipped: str = ""
    cpu: dict[str, float] = field(default_factory=dict)
    client_cpu: float = 0.0
    rss_mb: float = 0.0
    error_sample: str = ""
    stolen: float = 0.0
    """Of the CPU time asked for during the phase, the share the hypervisor took."""

    @property
    def name(self) -> str:
        mode = "stream" if self.stream else "json"
        if self.kind == "closed":
            return f"closed c={self.concurrency} {mode}"
        return f"open {self.rate}/s {mode}"

    @property
    def throughput(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q / 100 * len(data)))]

    def cpu_ms_per_request(self, part: str = "server") -> float:
        return self.cpu.get(part, 0.0) / self.ok * 1000 if self.ok else float("nan")

    @property
    def measured(self) -> bool:
        return not self.overloaded and not self.skipped and self.ok > 0


class Body:
    """Request bodies that differ in their one message (``tag`` and a counter): every
    request is a new conversation and none repeats, so the repeat guard stays on."""

    def __init__(self, endpoint: Endpoint, stream: bool, tag: str) -> None:
        self.endpoint = endpoint
        flag = "true" if stream else "false"
        head = f'"model":"{MODEL}","stream":{flag}'
        self.path = endpoint.path
        if endpoint.wire == "bedrock":
            head = '"anthropic_version":"bedrock-2023-05-31"'
            operation = "invoke-with-response-stream" if stream else "invoke"
            self.path = f"/bedrock/model/us.anthropic.{MODEL}/{operation}"
        elif endpoint.wire == "vertex":
            head = f'"anthropic_version":"vertex-2023-10-16","stream":{flag}'
            self.path = f"{VERTEX_PATH}/{MODEL}:{'streamRawPredict' if stream else 'rawPredict'}"
        self.prefix = (
            f'{{{head},"max_tokens":64,"messages":[{{"role":"user",'
            f'"content":"Say hello in a short sentence. ({tag} '
        ).encode()
        self.suffix = b')"}]}'
        if endpoint.wire == "converse":
            operation = "converse-stream" if stream else "converse"
            self.path = f"/bedrock/model/us.anthropic.{MODEL}/{operation}"
            self.prefix = (
                '{"inferenceConfig":{"maxTokens":64},"messages":[{"role":"user",'
                f'"content":[{{"text":"Say hello in a short sentence. ({tag} '
            ).encode()
            self.suffix = b')"}]}]}'
        headers = dict(endpoint.headers)
        if endpoint.session_header:
            headers[endpoint.session_header] = f"bench-{tag}"
        self.headers = headers

    def __call__(self, i: int) -> bytes:
        ep = self.endpoint
        return request_bytes(
            ep.host, ep.port, self.path, self.headers, self.prefix + str(i).encode() + self.suffix
        )


CpuProbe = Callable[[], dict[str, float]]


def _cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


async def _warm_up(pool: Pool, body: Body, connections: int, requests: int) -> None:
    """Open ``connections`` and send ``requests`` through them before measuring, so the
    measured window holds neither connection set-up nor a server's first-call work."""
    counter = iter(range(1_000_000_000, 1_000_000_000 + requests))

    async def worker() -> None:
        for i in counter:
            conn = await pool.acquire()
            await conn.send(body(i))
            pool.release(conn)

    await asyncio.wait_for(asyncio.gather(*[worker() for _ in range(connections)]), 60)


async def closed_loop(
    endpoint: Endpoint, stream: bool, concurrency: int, seconds: float, tag: str, probe: CpuProbe
) -> Phase:
    phase = Phase("closed", stream, concurrency=concurrency)
    body = Body(endpoint, stream, tag)
    pool = Pool(endpoint.host, endpoint.port)
    counter = iter(range(10**9))
    try:
        await _warm_up(pool, body, concurrency, concurrency * 2)
        cpu0, client0 = probe(), time.process_time()
        start = time.perf_counter()
        stop_at = start + seconds

        async def worker() -> None:
            conn = await pool.acquire()
            while time.perf_counter() < stop_at:
                sent = time.perf_counter()
                phase.sent += 1
                try:
                    status = await conn.send(body(next(counter)))
                except Exception as exc:
                    phase.errors += 1
                    phase.error_sample = phase.error_sample or repr(exc)
                    conn = await pool.acquire()
                    continue
                if status == 200:
                    phase.ok += 1
                    phase.latencies_ms.append((time.perf_counter() - sent) * 1000)
                else:
                    phase.errors += 1
                    phase.error_sample = phase.error_sample or _sample(status, conn.error_body)
                if conn.closed or not conn.reusable:
                    conn.close()
                    conn = await pool.acquire()

        await asyncio.wait_for(
            asyncio.gather(*[worker() for _ in range(concurrency)]), seconds + 60
        )
        phase.elapsed = time.perf_counter() - start
        phase.cpu = _cpu_delta(cpu0, probe())
        phase.client_cpu = time.process_time() - client0
    finally:
        pool.close()
    if phase.errors > 0.01 * max(1, phase.sent):
        phase.overloaded = f"{phase.errors} of {phase.sent} failed"
    return phase


async def open_loop(
    endpoint: Endpoint, stream: bool, rate: int, seconds: float, tag: str, probe: CpuProbe
) -> Phase:
    phase = Phase("open", stream, rate=rate)
    body = Body(endpoint, stream, tag)
    pool = Pool(endpoint.host, endpoint.port)
    backlog_cap = max(100, rate // 2)
    grace = max(2.0, seconds / 2)
    in_flight = 0
    last_done = 0.0

    async def one(i: int, due: float) -> None:
        nonlocal in_flight, last_done
        try:
            conn = await pool.acquire()
            status = await conn.send(body(i))
        except Exception as exc:
            phase.errors += 1
            phase.error_sample = phase.error_sample or repr(exc)
            return
        finally:
            in_flight -= 1
        last_done = time.perf_counter()
        if status == 200:
            phase.ok += 1
            phase.latencies_ms.append((last_done - due) * 1000)
        else:
            phase.errors += 1
            phase.error_sample = phase.error_sample or _sample(status, conn.error_body)
        pool.release(conn)

    tasks: set[asyncio.Task[None]] = set()
    try:
        await _warm_up(pool, body, 8, 40)
        cpu0, client0 = probe(), time.process_time()
        start = time.perf_counter() + 0.01
        total = int(rate * seconds)
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= backlog_cap:
                after = time.perf_counter() - start
                phase.overloaded = f"backlog passed {backlog_cap} requests after {after:.1f} s"
                break
            in_flight += 1
            task = asyncio.create_task(one(i, due))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            phase.sent += 1
        if tasks and not phase.overloaded:
            _, pending = await asyncio.wait(set(tasks), timeout=grace)
            if pending:
                phase.overloaded = (
                    f"{len(pending)} requests unanswered {grace:.0f} s after the last"
                )
        phase.elapsed = max(last_done, start + phase.sent / rate) - start
        phase.cpu = _cpu_delta(cpu0, probe())
        phase.client_cpu = time.process_time() - client0
    finally:
        for task in tasks:
            task.cancel()
        pool.close()
    if not phase.overloaded:
        if phase.errors > 0.01 * max(1, phase.sent):
            phase.overloaded = f"{phase.errors} of {phase.sent} failed"
        else:
            # Answers per second from the first request to the last answer, less one median
            # latency (the last answer's own wait is not a shortfall of pace).
            busy = max(phase.sent / rate, phase.elapsed - phase.pct(50) / 1000, 1e-9)
            if phase.ok / busy < 0.9 * rate:
                phase.overloaded = f"answered {phase.ok / busy:.0f} req/s"

    return phase


def _sample(status: int, body: bytes) -> str:
    return f"HTTP {status}: {body.decode(errors='replace')[:200]}"
