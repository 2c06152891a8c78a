"""What the AWS door reads of a request's body, and when: nothing before the key it was
signed with is known and its signature fresh (anyone can send a body; the door buffers
up to 16 MB of a non-S3 one)."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import pytest

from tests.support.aws import issue_aws_keys
from tests.support.server import RunningTether

BODY_BYTES = 16 * 1024 * 1024
AUTH = (
    "AWS4-HMAC-SHA256 Credential={key}/{date}/us-east-1/sts/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64
)


def _head_only(tether: RunningTether, key: str, date: str) -> bytes:
    """Sends a request's head announcing a 16 MB body, and none of the body: the answer,
    or b"" if tether waits for the body instead (5 s)."""
    url = urlsplit(tether.url)
    head = (
        f"POST /aws/ HTTP/1.1\r\nHost: {url.netloc}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"X-Amz-Date: {date}T000000Z\r\nAuthorization: {AUTH.format(key=key, date=date)}\r\n"
        f"Content-Length: {BODY_BYTES}\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=5) as conn:
        conn.sendall(head.encode())
        try:
            return conn.recv(65536)
        except TimeoutError:
            return b""


@pytest.mark.parametrize("kind", ["unknown key", "stale signature"])
def test_a_body_is_not_read_for_an_unknown_key_or_a_stale_signature(
    broker: RunningTether, kind: str
) -> None:
    broker.create_project(f"bodies-{kind[0]}")
    broker.create_agent(f"bodies-{kind[0]}-agent", f"bodies-{kind[0]}")
    known = issue_aws_keys(broker, f"bodies-{kind[0]}-agent").access_key_id
    today = time.strftime("%Y%m%d", time.gmtime())
    key, date = ("AKIAUNKNOWN000000000", today) if kind == "unknown key" else (known, "20200101")
    answer = _head_only(broker, key, date)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
