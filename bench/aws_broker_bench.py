"""AWS broker benchmark: what the broker adds to an AWS call, in one run.

moto (server mode, in a subprocess) plays AWS; a real ``tether up`` (SQLite, durable audit)
brokers. The same boto3 calls go straight to moto with the real credential (baseline) and
through tether with the agent's pair: SigV4 verified, mapped, tags looked up (cached),
decided by the pipeline, audited, re-signed and relayed. Sequential calls on one
keep-alive connection; prints P50/P99, the added latency, and tether's CPU time per call.

    uv run python bench/aws_broker_bench.py [--quick] [--only TEXT]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config
from botocore.exceptions import ClientError
from harness import cpu_seconds, free_port, report, timed, wait_http

ADMIN_TOKEN = "tta_bench_aws_admin_token_0123456789abcdef"
REAL = ("AKIABENCHREALKEY0001", "bench-real-secret-000000000000000000000")
REGION = "us-east-1"


def clients(endpoint: str, key: str, secret: str) -> dict[str, Any]:
    config = Config(retries={"max_attempts": 1}, tcp_keepalive=True)
    return {
        service: boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=config,
        )
        for service in ("s3", "iam", "cloudwatch")
    }


def _get(key: str) -> Callable[[dict[str, Any], int], object]:
    return lambda c, i: c["s3"].get_object(Bucket="bench", Key=key)["Body"].read()


def _put(c: dict[str, Any], i: int) -> object:
    return c["s3"].put_object(Bucket="bench", Key=f"k{i % 10}", Body=b"x" * 1024)


def _delete(c: dict[str, Any], i: int) -> object:
    """Through tether every deletion is refused into one pending approval group (as
    ``aws s3 rb --force`` on a full bucket is): the cost of asking, not of deleting."""
    try:
        return c["s3"].delete_object(Bucket="bench", Key=f"gone/{i}")
    except ClientError as exc:
        return exc.response["Error"]["Code"]


CALLS: dict[str, Callable[[dict[str, Any], int], object]] = {
    "s3 GetObject 1 KiB": _get("small"),
    "s3 PutObject 1 KiB": _put,
    "s3 GetObject 8 MiB": _get("large"),
    "iam ListRoles (query)": lambda c, i: c["iam"].list_roles(),
    "cloudwatch DescribeAlarms (CBOR)": lambda c, i: c["cloudwatch"].describe_alarms(),
    "s3 DeleteObject (refused, joins a group)": _delete,
}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer calls")
    parser.add_argument("--only", default="", help="the calls whose name holds this text")
    args = parser.parse_args()
    n = 40 if args.quick else 200
    workdir = Path(tempfile.mkdtemp(prefix="tether-aws-bench-"))
    moto_port, tether_port = free_port(), free_port()
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(moto_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {**os.environ, "TETHER_DATA_DIR": str(workdir), "TETHER_ADMIN_TOKEN": ADMIN_TOKEN,
           "TETHER_PORT": str(tether_port), "TETHER_LOG_LEVEL": "WARNING"}  # fmt: skip
    tether = subprocess.Popen(
        [sys.executable, "-m", "tether.cli", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        moto_url = f"http://127.0.0.1:{moto_port}"
        wait_http(f"{moto_url}/moto-api/")
        wait_http(f"http://127.0.0.1:{tether_port}/healthz")
        admin = httpx.Client(
            base_url=f"http://127.0.0.1:{tether_port}/admin/v1",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        admin.post("/projects", json={"name": "bench", "default_budgets": False}).raise_for_status()
        policy = {"source": "permit(principal, action, resource);"}
        admin.put("/projects/bench/policy", json=policy).raise_for_status()
        # the same call hundreds of times in one session is this benchmark, not a loop
        admin.patch("/projects/bench/guards", json={"repeat_limit": None}).raise_for_status()
        real = {"access_key_id": REAL[0], "secret_access_key": REAL[1], "endpoint_url": moto_url}
        admin.put("/projects/bench/aws", json=real).raise_for_status()
        admin.post("/agents", json={"name": "bench-agent", "project": "bench"}).raise_for_status()
        pair = admin.post("/agents/bench-agent/aws-keys").json()
        direct = clients(moto_url, *REAL)
        brokered = clients(
            f"http://127.0.0.1:{tether_port}/aws", pair["access_key_id"], pair["secret_access_key"]
        )
        direct["s3"].create_bucket(Bucket="bench")
        direct["s3"].put_object(Bucket="bench", Key="small", Body=b"s" * 1024)
        direct["s3"].put_object(Bucket="bench", Key="large", Body=os.urandom(8 * 1024 * 1024))
        direct["iam"].create_role(RoleName="bench-role", AssumeRolePolicyDocument="{}")
        print(f"AWS broker: {n} sequential boto3 calls each, moto direct vs through tether "
              f"(SQLite, durable audit; {os.cpu_count()} cores)")  # fmt: skip
        for name, call in CALLS.items():
            if args.only not in name:
                continue
            calls = max(10, n // 10) if "8 MiB" in name else n
            for target in (direct, brokered):  # warm up connections, caches, tag lookups
                for warm in range(3):
                    call(target, warm)

            async def run(
                target: dict[str, Any], c: Callable[..., object] = call, count: int = calls
            ) -> list[float]:
                return await timed(count, lambda k: asyncio.to_thread(c, target, k))

            baseline = asyncio.run(run(direct))
            cpu0 = cpu_seconds(tether.pid)
            through = asyncio.run(run(brokered))
            cpu = cpu_seconds(tether.pid) - cpu0
            report(f"{name} direct", baseline)
            report(f"{name} via tether", through, baseline)
            print(f"  {'':<44} tether CPU {cpu / calls * 1000:.2f} ms per call")
    finally:
        tether.terminate()
        moto.terminate()
        tether.wait(10)
        moto.wait(10)


if __name__ == "__main__":
    main()
