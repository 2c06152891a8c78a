"""What noting a key's client address costs on the hot path: ``KeyUse.note`` with and
without an address (the baseline, what main did), in the same run.

    uv run python bench/key_use_bench.py --calls 1000000
"""

from __future__ import annotations

import argparse
import os
import time

from tether.identity.key_use import KeyUse
from tether.store.agents import AgentStore
from tether.store.database import Database
from tether.store.key_addresses import KeyAddressStore


def per_call_ns(use: KeyUse, calls: int, keys: list[str], addresses: list[str | None]) -> float:
    started = time.perf_counter_ns()
    for n in range(calls):
        use.note(keys[n % len(keys)], addresses[n % len(addresses)])
    return (time.perf_counter_ns() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000)
    args = parser.parse_args()
    db = Database("sqlite+aiosqlite:///:memory:")  # never touched: nothing is flushed
    keys = [f"key{n:04d}" for n in range(200)]
    baseline = per_call_ns(KeyUse(AgentStore(db)), args.calls, keys, [None])
    one = per_call_ns(KeyUse(AgentStore(db), KeyAddressStore(db)), args.calls, keys, ["10.0.0.1"])
    alternating = per_call_ns(
        KeyUse(AgentStore(db), KeyAddressStore(db)), args.calls, keys, ["10.0.0.1", "10.0.0.2"]
    )
    print(f"KeyUse.note over {args.calls:,} calls, 200 keys (load {os.getloadavg()[0]:.1f}):")
    print(f"  no address (baseline)       {baseline:6.0f} ns/call")
    print(f"  one address per key         {one:6.0f} ns/call")
    print(f"  two addresses alternating   {alternating:6.0f} ns/call")


if __name__ == "__main__":
    main()
