"""Claude Code HTTP hooks with the JSON Claude Code sends: Bash commands parsed for what
they do, Edit/Write on their paths, approvals, unknown commands, PostToolUse audit."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from tests.support.server import RunningTether

POLICY = """\
permit(principal, action in Action::"s3:*", resource)
when { resource.arn like "arn:aws:s3:::dev-*" };

permit(
  principal,
  action in [Action::"file:Read", Action::"file:Write", Action::"file:Delete"],
  resource
)
when { resource.arn == "/home/dev/app" || resource.arn like "/home/dev/app/*" };

permit(principal, action == Action::"tool:Bash", resource)
when { resource.arn like "command:make *" };

permit(principal, action in Action::"db:*", resource)
when { resource.arn like "postgres://localhost/scratch/*" };
"""

CWD = "/home/dev/app"


def payload(tool: str, tool_input: dict[str, Any], event: str = "PreToolUse") -> dict[str, Any]:
    """A hook body as Claude Code 2.1 sends it."""
    return {
        "session_id": "d97e2169-8a54-4b1e-9f27-3c1f0f8b9a11",
        "transcript_path": "/home/dev/.claude/projects/app/d97e2169.jsonl",
        "cwd": CWD,
        "prompt_id": "p-1",
        "permission_mode": "bypassPermissions",
        "hook_event_name": event,
        "tool_name": tool,
        "tool_input": tool_input,
        "tool_use_id": "toolu_01ABCDEF",
    }


@pytest.fixture
def hook(tether: RunningTether):  # type: ignore[no-untyped-def]
    tether.create_project("p", policy=POLICY)
    key = tether.create_agent("claude-dev", "p")

    def send(
        tool: str, tool_input: dict[str, Any], query: str = "", **extra: Any
    ) -> httpx.Response:
        body = payload(tool, tool_input) | extra
        return httpx.post(
            f"{tether.url}/hooks/claude-code{query}",
            json=body,
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )

    return send


def decision_of(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 200, response.text
    out = response.json()["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse"
    return out["permissionDecision"], out["permissionDecisionReason"]


def test_edit_and_write_inside_scope_are_allowed(hook) -> None:  # type: ignore[no-untyped-def]
    edit = {"file_path": f"{CWD}/src/main.py", "old_string": "a", "new_string": "b"}
    assert decision_of(hook("Edit", edit))[0] == "allow"
    assert decision_of(hook("Write", {"file_path": "notes.md", "content": "x"}))[0] == "allow"


def test_write_outside_scope_is_denied(hook) -> None:  # type: ignore[no-untyped-def]
    decision, reason = decision_of(hook("Write", {"file_path": "/etc/passwd", "content": "x"}))
    assert decision == "deny"
    assert "file:Write on /etc/passwd" in reason
    traversal = hook("Write", {"file_path": "../../../etc/cron.d/x", "content": "x"})
    assert decision_of(traversal)[0] == "deny"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("aws s3 rb s3://prod-x --force", "s3:DeleteBucket on arn:aws:s3:::prod-x"),
        ("rm -rf /var/lib/postgres", "file:Delete on /var/lib/postgres"),
        ("psql -h db1 -d prod -c 'DROP TABLE users'", "db:DropTable on postgres://db1/prod/users"),
        (
            "ls && aws iam delete-role --role-name admin",
            "iam:DeleteRole on arn:aws:iam:::role/admin",
        ),
        ("cat README.md > /etc/motd", "file:Write on /etc/motd"),
    ],
)
def test_bash_commands_are_parsed_and_out_of_scope_ones_denied(hook, command, expected) -> None:  # type: ignore[no-untyped-def]
    decision, reason = decision_of(hook("Bash", {"command": command, "description": "x"}))
    assert decision == "deny"
    assert expected in reason


def test_in_scope_bash_is_allowed(hook) -> None:  # type: ignore[no-untyped-def]
    for command in (
        "ls -la src",
        "cat README.md | grep tether",
        "make test",
        "aws s3 ls s3://dev-a",
    ):
        assert decision_of(hook("Bash", {"command": command}))[0] == "allow", command


def test_deletions_in_scope_wait_for_approval(hook, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    decision, reason = decision_of(hook("Bash", {"command": "rm -rf build"}))
    assert decision == "deny"
    approval = tether.call("GET", "/approvals").json()[0]
    assert approval["action"] == "file:Delete" and approval["resource"] == f"{CWD}/*"
    assert approval["prefix"] == f"{CWD}/" and approval["count"] == 1
    assert approval["items"] == [f"{CWD}/build"]
    assert approval["id"] in reason and "tether approvals approve" in reason
    assert approval["session"] == "d97e2169-8a54-4b1e-9f27-3c1f0f8b9a11"

    decided = tether.call("POST", f"/approvals/{approval['id']}/approve", json={}).json()
    assert decided["resource"] == f"{CWD}/build" and decided["prefix"] is None, "a group of one"
    assert decision_of(hook("Bash", {"command": "rm -rf dist"}))[0] == "deny", "not a sibling"
    assert decision_of(hook("Bash", {"command": "rm -rf build"}))[0] == "allow"
    assert decision_of(hook("Bash", {"command": "rm -rf build"}))[0] == "deny", "used once"


def test_pending_can_ask_the_local_user_or_wait(hook, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    drop = {"command": "psql -c 'DROP TABLE tmp' postgres://localhost/scratch"}
    assert decision_of(hook("Bash", drop, "?pending=ask"))[0] == "ask"
    approval_id = tether.call("GET", "/approvals").json()[0]["id"]
    answers: list[httpx.Response] = []
    waiter = threading.Thread(target=lambda: answers.append(hook("Bash", drop, "?wait=20")))
    waiter.start()
    time.sleep(0.3)
    tether.call("POST", f"/approvals/{approval_id}/approve", json={})
    waiter.join(25)
    assert decision_of(answers[0])[0] == "allow"


def test_unknown_commands_get_the_project_default(hook, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    for command in ("python3 deploy.py", "echo $(cat ~/.aws/credentials)", 'unbalanced "quote'):
        decision, reason = decision_of(hook("Bash", {"command": command}))
        assert decision == "deny", command
        assert "cannot check" in reason
    tether.call("PATCH", "/projects/p", json={"unknown_command": "ask"})
    decision, reason = decision_of(hook("Bash", {"command": "python3 deploy.py"}))
    assert decision == "deny" and "approval apr_" in reason
    assert tether.call("GET", "/approvals").json()[0]["action"] == "tool:Bash"


def test_secrets_in_commands_do_not_reach_the_audit_trail(hook, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    secret = "sk-ant-api03-SECRETSECRETSECRET"
    hook("Bash", {"command": f"curl -H 'x-api-key: {secret}' https://api.example.com"})
    events = tether.call("GET", "/audit", params={"agent": "claude-dev"}).text
    assert "curl" in events and secret not in events


def test_post_tool_use_is_audited_in_the_same_session(hook, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    hook("Bash", {"command": "ls"})
    response = hook(
        "Bash",
        {"command": "ls"},
        hook_event_name="PostToolUse",
        tool_response={"stdout": "a\nb", "stderr": "", "interrupted": False},
    )
    assert response.status_code == 200 and response.json() == {}
    events = tether.call(
        "GET", "/audit", params={"session": "d97e2169-8a54-4b1e-9f27-3c1f0f8b9a11"}
    ).json()
    assert [e["action"] for e in events] == ["file:Read", "tool_result:Bash"]
    assert (
        events[1]["result"] == "ok" and events[1]["attributes"]["tool_use_id"] == "toolu_01ABCDEF"
    )


def test_bad_key_and_bad_body_are_refused_and_stop_the_turn(tether: RunningTether) -> None:
    """The key is checked first, from the headers; a body is only read for a live key. The
    refusal names no event (the body was not read), so Claude Code accepts it for any."""
    bad_key = httpx.post(
        f"{tether.url}/hooks/claude-code",
        json=payload("Bash", {"command": "ls"}),
        headers={"Authorization": "Bearer tth_wrong"},
    )
    assert bad_key.status_code == 200, bad_key.text
    refused = bad_key.json()
    assert refused["decision"] == "block" and refused["continue"] is False
    assert "hookSpecificOutput" not in refused and "not valid" in refused["stopReason"]
    tether.create_project("p")
    good = {"Authorization": f"Bearer {tether.create_agent('a', 'p')}"}
    malformed = httpx.post(f"{tether.url}/hooks/claude-code", content=b"{not json", headers=good)
    assert malformed.status_code == 400
    assert malformed.headers["x-should-retry"] == "false"
    assert malformed.json()["decision"] == "block" and malformed.json()["continue"] is False
    missing = httpx.post(f"{tether.url}/hooks/claude-code", json=payload("Bash", {}), headers=good)
    assert missing.status_code == 400 and missing.headers["x-should-retry"] == "false"
    assert "tool_input.command" in missing.json()["error"]["message"]


def test_a_refused_part_stops_the_call_before_any_approval_is_requested(
    hook, tether: RunningTether
) -> None:  # type: ignore[no-untyped-def]
    decision, reason = decision_of(hook("Bash", {"command": "rm -rf build && python3 x.py"}))
    assert decision == "deny" and "python3" in reason
    assert tether.call("GET", "/approvals").json() == []


def test_one_tool_call_spends_its_approvals_only_when_all_are_granted(
    hook, tether: RunningTether
) -> None:  # type: ignore[no-untyped-def]
    both = {"command": "rm -rf build && rm -rf dist && rm -rf lib/old"}
    decision, reason = decision_of(hook("Bash", both))
    assert decision == "deny"
    (group,) = tether.call("GET", "/approvals").json()
    assert reason.count(group["id"]) == 3, "the group's request is told once, not per path"
    assert group["count"] == 3
    assert group["items"] == [f"{CWD}/build", f"{CWD}/dist", f"{CWD}/lib/old"]

    assert decision_of(hook("Bash", both))[0] == "deny", "still pending"
    assert tether.call("GET", f"/approvals/{group['id']}").json()["count"] == 6, "retry joined"

    tether.call("POST", f"/approvals/{group['id']}/approve", json={"max_uses": 3})
    assert decision_of(hook("Bash", both))[0] == "allow"
    shown = tether.call("GET", f"/approvals/{group['id']}").json()
    assert shown["state"] == "used" and shown["uses"] == 3


def test_rm_of_many_paths_asks_once_and_the_approver_may_only_narrow(
    hook, tether: RunningTether
) -> None:  # type: ignore[no-untyped-def]
    files = " ".join(f"out/f{i}.o" for i in range(40))
    decision, _ = decision_of(hook("Bash", {"command": f"rm {files}"}))
    assert decision == "deny"
    (group,) = tether.call("GET", "/approvals").json()
    assert group["prefix"] == f"{CWD}/out/" and group["count"] == 40
    assert group["items"] == [f"{CWD}/out/f{i}.o" for i in range(10)], "the first items"

    url = f"/approvals/{group['id']}/approve"
    for wider, word in (
        ({"max_uses": 41}, "more than the 40"),
        ({"prefix": f"{CWD}/"}, "not under the asked prefix"),
        ({"ttl_seconds": 86400}, "longer than"),
    ):
        refused = tether.call("POST", url, json=wider)
        assert refused.status_code == 400 and word in refused.json()["error"]["message"]
        assert tether.call("GET", f"/approvals/{group['id']}").json()["state"] == "pending"

    narrowed = tether.call("POST", url, json={"max_uses": 3, "ttl_seconds": 60}).json()
    assert narrowed["max_uses"] == 3 and narrowed["state"] == "approved"
    assert decision_of(hook("Bash", {"command": "rm out/a out/b out/c"}))[0] == "allow"
    assert decision_of(hook("Bash", {"command": "rm out/d"}))[0] == "deny", "count spent"
    assert tether.call("GET", f"/approvals/{group['id']}").json()["state"] == "used"


def test_a_denial_denies_the_group(hook, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    decision_of(hook("Bash", {"command": "rm out/a out/b"}))
    (group,) = tether.call("GET", "/approvals").json()
    tether.call("POST", f"/approvals/{group['id']}/deny", json={"reason": "keep them"})
    decision, reason = decision_of(hook("Bash", {"command": "rm out/z"}))
    assert decision == "deny" and "keep them" in reason and group["id"] in reason
    assert len(tether.call("GET", "/approvals?state=all").json()) == 1


def test_looking_ahead_does_not_count_as_a_request(hook, tether: RunningTether) -> None:  # type: ignore[no-untyped-def]
    assert decision_of(hook("Bash", {"command": "ls src && cat README.md"}))[0] == "allow"
    session = "d97e2169-8a54-4b1e-9f27-3c1f0f8b9a11"
    deadline = time.monotonic() + 5
    while True:
        shown = tether.call("GET", f"/sessions/{session}").json()
        if shown["request_count"] >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    time.sleep(1.2)
    assert tether.call("GET", f"/sessions/{session}").json()["request_count"] == 2
