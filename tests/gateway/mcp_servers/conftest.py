from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.support.mcp_upstream import RunningMcpUpstream, start_mcp_upstream
from tests.support.server import RunningTether
from tether.cli.main import app

POLICY = """
permit(principal, action == Action::"mcp:query_db", resource)
  when { context.arguments.table like "readonly_*" };
permit(principal, action in [Action::"mcp:echo", Action::"mcp:drop_table", Action::"mcp:slow",
  Action::"mcp:fresh"], resource);
"""


@pytest.fixture(params=[False, True], ids=["sse", "json"])
def mcp_upstream(request: pytest.FixtureRequest) -> Iterator[RunningMcpUpstream]:
    """The warehouse MCP server, answering with SSE streams or with plain JSON."""
    running = start_mcp_upstream(json_response=request.param)
    yield running
    running.stop()


def register(tether: RunningTether, upstream: RunningMcpUpstream, project: str = "p") -> str:
    """Project ``project`` with the policy above, the warehouse registered as ``wh`` and
    an agent; returns the agent's key."""
    tether.create_project(project, policy=POLICY)
    added = tether.call(
        "POST",
        f"/projects/{project}/mcp-servers",
        json={"name": "wh", "url": upstream.url, "auth": "bearer", "credential": upstream.token},
    )
    assert added.status_code == 201, added.text
    return tether.create_agent(f"bot-{project}", project)


@pytest.fixture
def cli(tether_any: RunningTether, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The ``tether`` CLI (Typer's runner) against ``tether_any``, stdin as given."""
    monkeypatch.setenv("TETHER_URL", tether_any.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", tether_any.admin_token)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> Result:
        return runner.invoke(app, list(args), input=stdin)

    return run


def database_text(tether: RunningTether, tmp_path: Path) -> bytes:
    """Everything the store holds, as bytes to search for a secret."""
    url = tether.settings.database_url or ""
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1])
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    return subprocess.run(
        ["pg_dump", "--data-only", dsn], check=True, capture_output=True, timeout=60
    ).stdout
