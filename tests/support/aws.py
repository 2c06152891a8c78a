"""moto in server mode playing AWS, and a tether broker in front of it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from moto import backends
from moto.server import ThreadedMotoServer

from tests.support.server import RunningTether

__all__ = ["MOTO_KEY", "AgentPair", "agent_client", "issue_aws_keys", "moto_client", "running_moto"]

MOTO_KEY = ("AKIAMOTOREALKEY00001", "moto-real-secret-key-000000000000000000")
REGION = "us-east-1"


@dataclass(frozen=True)
class AgentPair:
    access_key_id: str
    secret_access_key: str


def _list_moto_modules_once() -> None:
    """moto's server lists its own package directory (a ``stat`` of each of some 200
    modules) on every request, under one lock: most of its CPU a request, measured in the
    1,000-object approval test. The package does not change while tests run."""
    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules


@contextmanager
def running_moto() -> Iterator[str]:
    _list_moto_modules_once()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def moto_client(moto_url: str, service: str) -> Any:
    """A client straight to moto with the real credential (setting up and checking)."""
    return boto3.client(
        service,
        endpoint_url=moto_url,
        region_name=REGION,
        aws_access_key_id=MOTO_KEY[0],
        aws_secret_access_key=MOTO_KEY[1],
    )


def set_aws_credentials(tether: RunningTether, project: str, moto_url: str, **extra: Any) -> None:
    response = tether.call(
        "PUT",
        f"/projects/{project}/aws",
        json={
            "access_key_id": MOTO_KEY[0],
            "secret_access_key": MOTO_KEY[1],
            "endpoint_url": moto_url,
            "region": REGION,
            **extra,
        },
    )
    assert response.status_code == 200, response.text


def issue_aws_keys(tether: RunningTether, agent: str) -> AgentPair:
    response = tether.call("POST", f"/agents/{agent}/aws-keys")
    assert response.status_code == 201, response.text
    body = response.json()
    return AgentPair(body["access_key_id"], body["secret_access_key"])


def agent_client(tether: RunningTether, pair: AgentPair, service: str, **config: Any) -> Any:
    """What the agent runs: boto3 with ``AWS_ENDPOINT_URL`` at tether and its own pair."""
    return boto3.client(
        service,
        endpoint_url=f"{tether.url}/aws",
        region_name=REGION,
        aws_access_key_id=pair.access_key_id,
        aws_secret_access_key=pair.secret_access_key,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, **config),
    )


def aws_cli(
    tether: RunningTether, pair: AgentPair, home: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """The real aws CLI as an agent runs it: tether's broker as its endpoint, the agent's
    own key pair, no profile or config file of this machine, one attempt per call."""
    (home / "empty").write_text("")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_ENDPOINT_URL": f"{tether.url}/aws",
        "AWS_ACCESS_KEY_ID": pair.access_key_id,
        "AWS_SECRET_ACCESS_KEY": pair.secret_access_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(home / "empty"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "empty"),
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_PAGER": "",
    }
    return subprocess.run(
        [sys.executable, "-m", "awscli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
