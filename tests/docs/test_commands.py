"""The quickstart's marked shell blocks (a fenced ``sh`` block right after
``<!-- test -->``) run as written, in order, in one shell, against a fresh data directory,
a fresh tether and the bundled fake Anthropic API: the manual cannot rot.

Only the addresses differ: the page's ``127.0.0.1:8080`` (tether) and ``127.0.0.1:9999``
(the fake) become the ports this test's servers got.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether

ROOT = Path(__file__).resolve().parents[2]
MARKED = re.compile(r"<!-- test -->\n```sh\n(.*?)```", re.DOTALL)
TESTED_PAGES = ["get-started.md", "front-doors.md"]


def marked_blocks(page: str) -> list[str]:
    return MARKED.findall((ROOT / "docs" / page).read_text())


@pytest.mark.parametrize("page", TESTED_PAGES)
def test_marked_blocks_run_as_written(
    page: str, tether: RunningTether, upstream: RunningFake, tmp_path: Path
) -> None:
    blocks = marked_blocks(page)
    assert len(blocks) >= 2, f"{page} lost its tested blocks"
    script = "set -euo pipefail\n" + "\n".join(blocks)
    script = script.replace("http://127.0.0.1:8080", tether.url)
    script = script.replace("http://127.0.0.1:9999", upstream.url)
    env = {
        **os.environ,
        "TETHER_DATA_DIR": str(tether.settings.data_dir),
        "TETHER_URL": tether.url,
        "UV_FROZEN": "1",
        "UV_PROJECT": str(ROOT),  # the blocks run in a scratch directory (agent.json)
    }
    env.pop("TETHER_ADMIN_TOKEN", None)
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The model call went through tether to the fake, with the project's key, and is recorded.
    (received,) = upstream.fake.received
    assert received.path == "/v1/messages"
    assert received.headers["x-api-key"] == upstream.fake.api_key  # tether's, not the agent's
    assert received.body["messages"] == [{"role": "user", "content": "hello"}]
    events = tether.call("GET", "/audit", params={"project": "payments"}).json()
    actions = {event["action"] for event in events}
    assert "model:messages" in actions, actions
