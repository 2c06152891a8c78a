"""The hot path's SigV4 signer gives botocore's signature, byte for byte."""

from __future__ import annotations

import pytest
from botocore.credentials import Credentials

from tether.gateway.aws.signing import sign_json_call
from tether.gateway.aws.upstream import sign_upstream


@pytest.mark.parametrize(
    "credentials",
    [Credentials("AKIAEXAMPLE000000001", "secret"), Credentials("ASIAEX", "s", "Fwo//token+=")],
)
@pytest.mark.parametrize(
    "url",
    [
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-opus-5-5/invoke",
        "http://127.0.0.1:9999/model/global.anthropic.claude-sonnet-4-5-v1%3A0/invoke",
    ],
)
def test_the_signature_is_botocores(credentials: Credentials, url: str) -> None:
    headers = [("content-type", "application/json"), ("X-Amzn-Bedrock-Trace", " ENABLED  ")]
    body = b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":1}'
    for _ in range(3):  # botocore signs at the current second: sign both within one
        ours = sign_json_call(url, headers, body, credentials, "bedrock", "us-west-2")
        theirs, _ = sign_upstream(
            "POST", url, headers, credentials, "bedrock", "us-west-2", None, body
        )
        if ours["X-Amz-Date"] == theirs["X-Amz-Date"]:
            break
    assert ours["Authorization"] == theirs["Authorization"]
    assert ours.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token")
