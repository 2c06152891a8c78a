"""The Messages proxy driven by the real anthropic SDK (sync and async, streaming and not)."""

from __future__ import annotations

import anthropic
import httpx
import pytest

from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply

MODEL = "claude-sonnet-5"


_open_clients: list[anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    while _open_clients:
        _open_clients.pop().close()


def client_for(tether: RunningTether, key: str, **kwargs) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=tether.url, api_key=key, max_retries=0, **kwargs)
    _open_clients.append(client)
    return client


def wait_for_events(tether: RunningTether, session: str, count: int) -> list[dict]:
    import time

    deadline = time.monotonic() + 5
    while True:
        events = tether.call("GET", "/audit", params={"session": session}).json()
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_non_streaming_call_uses_tethers_key_and_is_metered(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("claude-deploy-01", "p")
    upstream.fake.enqueue(
        FakeReply(
            text="hi there",
            input_tokens=1000,
            output_tokens=500,
            cache_creation_input_tokens=2000,
            cache_read_input_tokens=4000,
        )
    )
    client = client_for(gateway, key, default_headers={"X-Tether-Session-Id": "sess-a"})

    raw = client.messages.with_raw_response.create(
        model=MODEL, max_tokens=1000, messages=[{"role": "user", "content": "hello"}]
    )
    message = raw.parse()

    assert message.content[0].text == "hi there"
    assert message.usage.input_tokens == 1000
    assert raw.headers["tether-session-id"] == "sess-a"
    assert raw.headers["request-id"].startswith("req_")
    seen = upstream.fake.received[-1]
    assert seen.headers["x-api-key"] == upstream.fake.api_key
    assert key not in str(seen.headers)
    assert seen.headers["anthropic-version"]

    events = wait_for_events(gateway, "sess-a", 2)
    decision, completion = events[0], events[1]
    assert decision["action"] == "model:messages" and decision["result"] == "allow"
    assert completion["action"] == "model:messages:completed"
    assert completion["result"] == "ok"
    attrs = completion["attributes"]
    assert attrs["model"] == MODEL and attrs["status"] == 200
    assert attrs["usage"] == {
        "input_tokens": 1000,
        "output_tokens": 500,
        "cache_creation_input_tokens": 2000,
        "cache_read_input_tokens": 4000,
    }
    expected = (1000 * 2 + 500 * 10 + 2000 * 2.5 + 4000 * 0.20) / 1_000_000
    assert attrs["cost_usd"] == pytest.approx(expected)
    assert attrs["latency_ms"] > 0


def test_streaming_is_relayed_event_by_event_and_usage_counted(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("a", "p")
    upstream.fake.enqueue(
        FakeReply(text="one two three four", chunks=4, input_tokens=300, output_tokens=40)
    )
    client = client_for(gateway, key, default_headers={"X-Claude-Code-Session-Id": "cc-1"})

    with client.messages.stream(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "count"}]
    ) as stream:
        texts = list(stream.text_stream)
        final = stream.get_final_message()

    assert "".join(texts) == "one two three four"
    assert len(texts) == 4
    assert final.usage.output_tokens == 40
    completion = wait_for_events(gateway, "cc-1", 2)[1]
    assert completion["attributes"]["usage"]["input_tokens"] == 300
    assert completion["attributes"]["usage"]["output_tokens"] == 40
    session = gateway.call("GET", "/sessions/cc-1").json()
    assert session["agent"] == "a"


async def test_async_client_streaming_and_not(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("a", "p")
    client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key=key, max_retries=0)
    message = await client.messages.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
    )
    assert message.content[0].text == upstream.fake.default.text
    stream = await client.messages.create(
        model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}], stream=True
    )
    kinds = [event.type async for event in stream]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    await client.close()


def test_query_string_and_beta_headers_pass_through(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("a", "p")
    response = httpx.post(
        f"{gateway.url}/v1/messages?beta=true",
        json={"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers={
            "x-api-key": key,
            "anthropic-version": "2023-06-01",
            "anthropic-beta": "prompt-caching-2024-07-31",
            "X-Stainless-Retry-Count": "2",
        },
    )
    assert response.status_code == 200
    seen = upstream.fake.received[-1]
    assert seen.query == "beta=true"
    assert seen.headers["anthropic-beta"] == "prompt-caching-2024-07-31"


@pytest.mark.parametrize(
    "retry_count",
    ["\u00b2".encode(), b"9" * 5000, b"-1", b"two"],
    ids=["superscript", "long", "negative", "word"],
)
def test_a_retry_count_that_is_not_a_plain_number_is_ignored_not_a_500(
    gateway: RunningTether, retry_count: bytes
) -> None:
    """The SDK's retry count is noted in the trail when it is a number; any other value
    describes nothing, and the call goes on (a superscript digit or 5,000 digits had raised
    in ``int`` before the call was decided: a 500, unaudited)."""
    key = gateway.create_agent("a", "p")
    response = httpx.post(
        f"{gateway.url}/v1/messages",
        json={"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
        headers=[
            (b"x-api-key", key.encode()),
            (b"anthropic-version", b"2023-06-01"),
            (b"X-Claude-Code-Session-Id", b"retry-header"),
            (b"X-Stainless-Retry-Count", retry_count),
        ],
    )
    assert response.status_code == 200, response.text
    events = gateway.call("GET", "/audit", params={"session": "retry-header"}).json()
    (decided,) = [e for e in events if e["action"] == "model:messages"]
    assert decided["result"] == "allow"
    assert "retry_count" not in (decided.get("attributes") or {})


def test_bearer_token_works_like_api_key(gateway: RunningTether) -> None:
    key = gateway.create_agent("a", "p")
    with anthropic.Anthropic(base_url=gateway.url, auth_token=key, max_retries=0) as client:
        message = client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert message.type == "message"


def test_count_tokens(gateway: RunningTether) -> None:
    key = gateway.create_agent("a", "p")
    counted = client_for(gateway, key).messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "hello world " * 40}]
    )
    assert counted.input_tokens > 10


def test_tool_use_and_tool_result_are_recorded(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("a", "p")
    secret_cmd = {
        "command": "curl -H 'Authorization: Bearer abcdefghijklmnopqrstuvwxyz' x",
        "api_key": "s3cr3t",
    }
    upstream.fake.enqueue(
        FakeReply(kind="tool_use", tool_name="Bash", tool_input=secret_cmd, chunks=5),
        FakeReply(kind="tool_use", tool_name="Edit", tool_input={"file_path": "/tmp/x"}),
    )
    client = client_for(gateway, key, default_headers={"X-Tether-Session-Id": "tools"})
    with client.messages.stream(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "go"}]
    ) as stream:
        first = stream.get_final_message()
    tool_use = first.content[0]
    assert tool_use.type == "tool_use" and tool_use.input == secret_cmd
    client.messages.create(
        model=MODEL,
        max_tokens=50,
        messages=[
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [tool_use.model_dump()]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use.id,
                        "content": "permission denied",
                        "is_error": True,
                    }
                ],
            },
        ],
    )
    events = wait_for_events(gateway, "tools", 7)
    actions = [e["action"] for e in events]
    assert actions.count("tool_use:Bash") == 1 and actions.count("tool_use:Edit") == 1
    bash = next(e for e in events if e["action"] == "tool_use:Bash")
    assert bash["attributes"]["tool_use_id"] == tool_use.id
    assert len(bash["attributes"]["input_digest"]) == 64
    summary = bash["attributes"]["input_summary"]
    assert "s3cr3t" not in summary and "abcdefghijklmnopqrstuvwxyz" not in summary
    assert "curl" in summary
    result = next(e for e in events if e["action"] == "tool_result")
    assert result["attributes"] == {"tool_use_id": tool_use.id, "is_error": True}
    assert result["result"] == "error"


class TestUpstreamErrors:
    def test_429_is_relayed_with_retry_after(
        self, gateway: RunningTether, upstream: RunningFake
    ) -> None:
        key = gateway.create_agent("a", "p")
        upstream.fake.enqueue(
            FakeReply(
                kind="error",
                status=429,
                error_type="rate_limit_error",
                error_message="slow down",
                retry_after=7,
            )
        )
        with pytest.raises(anthropic.RateLimitError) as caught:
            client_for(gateway, key).messages.create(
                model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert caught.value.response.headers["retry-after"] == "7"
        assert "slow down" in str(caught.value)

    def test_529_overloaded_is_relayed(self, gateway: RunningTether, upstream: RunningFake) -> None:
        key = gateway.create_agent("a", "p")
        upstream.fake.enqueue(
            FakeReply(
                kind="error", status=529, error_type="overloaded_error", error_message="Overloaded"
            )
        )
        with pytest.raises(anthropic.APIStatusError) as caught:
            client_for(gateway, key).messages.create(
                model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert caught.value.status_code == 529

    def test_upstream_down_is_a_502_in_anthropic_format_and_audited(
        self, gateway: RunningTether, upstream: RunningFake
    ) -> None:
        key = gateway.create_agent("a", "p")
        upstream.stop()
        response = httpx.post(
            f"{gateway.url}/v1/messages",
            json={"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            headers={"x-api-key": key, "X-Tether-Session-Id": "down"},
        )
        assert response.status_code == 502
        body = response.json()
        assert body["type"] == "error" and body["error"]["type"] == "api_error"
        assert "could not reach" in body["error"]["message"]
        completion = wait_for_events(gateway, "down", 2)[1]
        assert completion["result"] == "error" and completion["attributes"]["status"] == 502

    def test_upstream_timeout_is_a_504(self, tmp_path, upstream: RunningFake) -> None:
        from tests.support.databases import sqlite_url
        from tests.support.server import start_tether

        server = start_tether(
            tmp_path / "d",
            sqlite_url(str(tmp_path)),
            anthropic_base_url=upstream.url,
            upstream_read_timeout=0.3,
        )
        try:
            server.create_project("p", upstream.fake.api_key)
            key = server.create_agent("a", "p")
            upstream.fake.enqueue(FakeReply(delay=2.0))
            response = httpx.post(
                f"{server.url}/v1/messages",
                json={
                    "model": MODEL,
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": "x"}],
                },
                headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
                timeout=30,
            )
            assert response.status_code == 504
            assert response.json()["error"]["type"] == "timeout_error"
        finally:
            server.stop()


class TestBadInput:
    def post(self, tether: RunningTether, body: bytes | dict, key: str | None) -> httpx.Response:
        headers = {"x-api-key": key} if key else {}
        if isinstance(body, dict):
            return httpx.post(f"{tether.url}/v1/messages", json=body, headers=headers)
        return httpx.post(f"{tether.url}/v1/messages", content=body, headers=headers)

    def test_malformed_json(self, gateway: RunningTether) -> None:
        key = gateway.create_agent("a", "p")
        response = self.post(gateway, b'{"model": ', key)
        assert response.status_code == 400
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert "not valid JSON" in response.json()["error"]["message"]

    def test_missing_model(self, gateway: RunningTether) -> None:
        key = gateway.create_agent("a", "p")
        response = self.post(gateway, {"max_tokens": 5, "messages": []}, key)
        assert response.status_code == 400
        assert "model" in response.json()["error"]["message"]

    def test_missing_max_tokens(self, gateway: RunningTether) -> None:
        key = gateway.create_agent("a", "p")
        response = self.post(gateway, {"model": MODEL, "messages": []}, key)
        assert response.status_code == 400
        assert "max_tokens" in response.json()["error"]["message"]

    def test_wrong_key_is_authentication_error(self, gateway: RunningTether) -> None:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            client_for(gateway, "tth_wrong").messages.create(
                model=MODEL, max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
        assert "not valid" in str(caught.value)

    def test_oversized_body_is_413(self, tmp_path, upstream: RunningFake) -> None:
        from tests.support.databases import sqlite_url
        from tests.support.server import start_tether

        server = start_tether(
            tmp_path / "d",
            sqlite_url(str(tmp_path)),
            anthropic_base_url=upstream.url,
            max_message_bytes=4096,
        )
        try:
            server.create_project("p")
            key = server.create_agent("a", "p")
            big = {
                "model": MODEL,
                "max_tokens": 5,
                "messages": [{"role": "user", "content": "x" * 10000}],
            }
            response = self.post(server, big, key)
            assert response.status_code == 413
            assert response.json()["error"]["type"] == "request_too_large"
        finally:
            server.stop()

    def test_project_without_credential_says_how_to_fix(self, gateway: RunningTether) -> None:
        gateway.create_project("bare")
        key = gateway.create_agent("a", "bare")
        response = self.post(gateway, {"model": MODEL, "max_tokens": 5, "messages": []}, key)
        assert response.status_code == 503
        assert "tether credentials set bare" in response.json()["error"]["message"]


def test_unknown_model_is_charged_the_fallback_price(
    gateway: RunningTether, upstream: RunningFake
) -> None:
    key = gateway.create_agent("a", "p")
    upstream.fake.enqueue(FakeReply(input_tokens=1_000_000, output_tokens=0))
    client_for(gateway, key, default_headers={"X-Tether-Session-Id": "unk"}).messages.create(
        model="claude-unreleased-9", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    completion = wait_for_events(gateway, "unk", 2)[1]
    assert completion["attributes"]["price_known"] is False
    assert completion["attributes"]["cost_usd"] == pytest.approx(10.0)


def test_abandoned_stream_is_still_counted(gateway: RunningTether, upstream: RunningFake) -> None:
    key = gateway.create_agent("a", "p")
    upstream.fake.enqueue(FakeReply(text="x" * 400, chunks=40, chunk_delay=0.05, input_tokens=777))
    with httpx.stream(
        "POST",
        f"{gateway.url}/v1/messages",
        json={
            "model": MODEL,
            "max_tokens": 50,
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
        headers={
            "x-api-key": key,
            "X-Tether-Session-Id": "left",
            "anthropic-version": "2023-06-01",
        },
    ) as response:
        for line in response.iter_lines():
            if "content_block_delta" in line:
                break
    events = wait_for_events(gateway, "left", 2)
    completion = events[1]
    assert completion["result"] == "abandoned"
    assert completion["attributes"]["usage"]["input_tokens"] == 777
