"""``/v1/files`` through tether with the ``anthropic`` SDK's beta Files client: each call
decided and audited on ``anthropic:file/{id}``, relayed with the project's key and the
agent's ``anthropic-beta``, a deletion approved by a human first, a stopped session
refused, and an upload over the Files API's size refused before it is read."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any

import anthropic
import pytest

from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.gateway.anthropic.files import MAX_FILE_BYTES

Sdk = Callable[..., anthropic.Anthropic]
BETA = "files-api-2025-04-14"


def _audit(tether: RunningTether, session: str) -> list[dict[str, Any]]:
    return list(tether.call("GET", "/audit", params={"session": session}).json())


def test_upload_list_read_download_and_delete_go_through_tether(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    client = sdk(gateway, gateway.create_agent("filer", "p"), session="s-files")
    content = os.urandom(3 * 1024 * 1024 + 17)
    files = client.beta.files
    uploaded = files.upload(file=("notes.bin", content, "application/octet-stream"), betas=[BETA])
    assert uploaded.filename == "notes.bin" and uploaded.size_bytes == len(content)
    assert upstream.fake.files.files[uploaded.id].content == content, "relayed untouched"

    assert [f.id for f in files.list(betas=[BETA])] == [uploaded.id]
    meta = files.retrieve_metadata(uploaded.id, betas=[BETA])
    assert meta.id == uploaded.id and meta.size_bytes == len(content)
    assert files.download(uploaded.id, betas=[BETA]).read() == content
    assert upstream.fake.files.betas == [BETA] * 4, "anthropic-beta passed through"

    with pytest.raises(anthropic.PermissionDeniedError) as held:
        files.delete(uploaded.id)
    assert "approval" in str(held.value)
    assert uploaded.id in upstream.fake.files.files, "nothing deleted before a human agrees"
    approval = gateway.call("GET", "/approvals").json()[0]
    assert approval["action"] == "files:Delete"
    assert approval["resource"] == f"anthropic:file/{uploaded.id}"
    assert gateway.call("POST", f"/approvals/{approval['id']}/approve", json={}).is_success
    assert files.delete(uploaded.id).id == uploaded.id
    assert uploaded.id not in upstream.fake.files.files

    # A call's completion is recorded after its answer is sent: wait for the last one.
    deadline = time.monotonic() + 30
    while not any(e["action"] == "files:Delete:completed" for e in _audit(gateway, "s-files")):
        assert time.monotonic() < deadline, "the deletion's completion was never recorded"
        time.sleep(0.05)
    events = _audit(gateway, "s-files")
    decided = [(e["action"], e["resource"], e["result"]) for e in events]
    resource = f"anthropic:file/{uploaded.id}"
    for expected in [
        ("files:Upload", "anthropic:files", "allow"),
        ("files:List", "anthropic:files", "allow"),
        ("files:Read", resource, "allow"),
        ("files:Download", resource, "allow"),
        ("files:Delete", resource, "pending"),
        ("files:Delete", resource, "allow"),
    ]:
        assert expected in decided, (expected, decided)
    completed = {e["action"]: e for e in events if e["action"].endswith(":completed")}
    assert uploaded.id in completed["files:Upload:completed"]["reason"]
    assert "notes.bin" in completed["files:Upload:completed"]["reason"]
    assert completed["files:Download:completed"]["reason"] == f"{len(content)} bytes relayed"
    assert completed["files:Delete:completed"]["result"] == "ok"


def test_a_policy_forbidding_a_file_action_refuses_it(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    gateway.apply_policy(
        "p",
        'permit(principal, action, resource);\n@id("no-uploads") forbid(principal, '
        'action == Action::"files:Upload", resource);',
    )
    client = sdk(gateway, gateway.create_agent("filer", "p"))
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        client.beta.files.upload(file=("a.txt", b"hello", "text/plain"))
    assert "no-uploads" in str(refused.value)
    assert not upstream.fake.files.files


def test_a_killed_session_may_not_use_files(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    client = sdk(gateway, gateway.create_agent("filer", "p"), session="s-stop")
    uploaded = client.beta.files.upload(file=("a.txt", b"hello", "text/plain"))
    assert gateway.call("POST", "/sessions/s-stop/kill", json={"reason": "drill"}).is_success
    with pytest.raises(anthropic.APIStatusError) as refused:
        client.beta.files.download(uploaded.id)
    assert refused.value.status_code in (403, 423)
    with pytest.raises(anthropic.APIStatusError):
        client.beta.files.upload(file=("b.txt", b"again", "text/plain"))
    assert len(upstream.fake.files.files) == 1


def test_an_upload_over_the_files_api_size_is_refused_before_it_is_read(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("filer", "p")
    host, port = gateway.url.removeprefix("http://").split(":")
    head = (
        "POST /v1/files HTTP/1.1\r\n"
        f"Host: {host}\r\n"
        f"x-api-key: {key}\r\n"
        "anthropic-version: 2023-06-01\r\n"
        f"anthropic-beta: {BETA}\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {MAX_FILE_BYTES + 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((host, int(port.rstrip("/"))), timeout=10) as conn:
        conn.sendall(head.encode() + b"--x\r\n")
        answer = conn.recv(65536).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "500" in answer or str(MAX_FILE_BYTES) in answer
    assert upstream.fake.files.betas == [], "nothing went upstream"
