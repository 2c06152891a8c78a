from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.mcp_upstream import RunningMcpUpstream, start_mcp_upstream
from tests.support.server import RunningTether

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
