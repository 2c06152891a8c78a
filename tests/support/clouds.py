"""Claude on the clouds through tether: the fake Bedrock and Vertex behind a tether, and
Claude Code's environment for each mode (the settings docs/clouds.md gives)."""

from __future__ import annotations

from typing import Any

from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.bedrock import BEDROCK_KEY

__all__ = ["BEDROCK_REGION", "VERTEX_REGION", "bedrock_env", "give_clouds", "vertex_env"]

BEDROCK_REGION = "us-east-1"
VERTEX_REGION = "us-east5"
GCP_PROJECT = "agents-gcp"


def give_clouds(tether: RunningTether, project: str, upstream: RunningFake) -> dict[str, Any]:
    """Store the fake clouds' credentials for ``project``: the AWS key pair the fake
    Bedrock checks signatures with, and a service account the fake Google issues tokens
    for. Returns the service account key file."""
    aws = tether.call(
        "PUT",
        f"/projects/{project}/aws",
        json={
            "access_key_id": BEDROCK_KEY[0],
            "secret_access_key": BEDROCK_KEY[1],
            "endpoint_url": upstream.url,
            "region": BEDROCK_REGION,
            "account_id": "123456789012",
        },
    )
    assert aws.status_code == 200, aws.text
    key = upstream.fake.vertex.new_service_account(upstream.url, GCP_PROJECT)
    gcp = tether.call(
        "PUT",
        f"/projects/{project}/gcp",
        json={"service_account": key, "endpoint_url": upstream.url},
    )
    assert gcp.status_code == 200, gcp.text
    return key


def bedrock_env(tether: RunningTether, key: str) -> dict[str, str]:
    """Claude Code in Bedrock mode at tether: no AWS credential, the tether key in a header."""
    return {
        "CLAUDE_CODE_USE_BEDROCK": "1",
        "ANTHROPIC_BEDROCK_BASE_URL": f"{tether.url}/bedrock",
        "CLAUDE_CODE_SKIP_BEDROCK_AUTH": "1",
        "ANTHROPIC_CUSTOM_HEADERS": f"x-api-key: {key}",
        "AWS_REGION": BEDROCK_REGION,
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "ANTHROPIC_API_KEY": "",
    }


def vertex_env(tether: RunningTether, key: str) -> dict[str, str]:
    """Claude Code in Vertex mode at tether: no Google credential, the tether key in a header."""
    return {
        "CLAUDE_CODE_USE_VERTEX": "1",
        "ANTHROPIC_VERTEX_BASE_URL": f"{tether.url}/vertex/v1",
        "ANTHROPIC_VERTEX_PROJECT_ID": "any-project",
        "CLOUD_ML_REGION": VERTEX_REGION,
        "CLAUDE_CODE_SKIP_VERTEX_AUTH": "1",
        "ANTHROPIC_CUSTOM_HEADERS": f"x-api-key: {key}",
        "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
        "ANTHROPIC_API_KEY": "",
    }
