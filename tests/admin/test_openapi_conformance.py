"""The admin API and its OpenAPI document agree: a bounded schemathesis run (every
check: no 5xx, documented statuses and content types, valid requests accepted, invalid
ones refused, 405 with ``Allow`` for undeclared methods) against a real tether."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.support.server import RunningTether

MAX_EXAMPLES = "5"
SEED = os.environ.get("TETHER_SCHEMATHESIS_SEED", "20261130")


def test_the_admin_api_conforms_to_its_openapi_document(
    tether: RunningTether, tmp_path: Path
) -> None:
    tether.create_project("p")
    tether.create_agent("a", "p")
    schemathesis = Path(sys.executable).parent / "schemathesis"
    run = subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{tether.url}/admin/v1/openapi.json",
            "--header",
            f"Authorization: Bearer {tether.admin_token}",
            "--checks",
            "all",
            # Stateful links guess that what POST /projects made is readable at every path
            # under it; a project's policy (PUT …/policy) answers 404 with what to do until
            # one is applied, which this check takes for a lost resource.
            "--exclude-checks",
            "ensure_resource_availability",
            "--max-examples",
            MAX_EXAMPLES,
            "--seed",
            SEED,
            "--request-timeout",
            "30",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=300,  # ~60 s alone; it timed out at 120 s at load 10
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"},
    )
    report = run.stdout + run.stderr
    failures = report[report.find("FAILURES") :] if "FAILURES" in report else report
    assert run.returncode == 0, failures[:8000]
    tested = re.search(r"Tested:\s+(\d+)", report)
    assert "passed" in report and tested is not None, report[-3000:]
    assert int(tested.group(1)) >= 50, "every admin operation is exercised"
