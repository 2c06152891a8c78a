"""A refused key is not retried (#23): the ``anthropic`` SDK (default ``max_retries=2``)
reaches tether once for a 401 and shows why."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from tests.support.server import RunningTether
from tests.support.streams import MODEL


def test_an_unknown_key_is_refused_once_and_not_retried(gateway: RunningTether) -> None:
    sent: list[httpx2.Request] = []
    client = anthropic.Anthropic(
        base_url=gateway.url,
        api_key="tth_not-a-real-key",
        http_client=httpx2.Client(event_hooks={"request": [sent.append]}),
    )
    with client, pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(
            model=MODEL,
            max_tokens=16,
            messages=[{"role": "user", "content": "hi"}],
        )
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(sent) == 1, "the SDK did not retry the refusal"
    assert caught.value.message
