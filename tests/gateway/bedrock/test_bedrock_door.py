"""``/bedrock`` and ``bedrock-runtime`` through ``/aws``, driven by the real clients: the
``anthropic`` SDK's ``AnthropicBedrock`` and boto3, against the fake Bedrock (which checks
tether's SigV4 signature with the project's key pair)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote

import anthropic
import httpx
import pytest
from botocore.exceptions import ClientError

from tests.support.aws import agent_client, issue_aws_keys
from tests.support.clouds import BEDROCK_REGION, give_clouds
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply

SONNET = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
OPUS = "us.anthropic.claude-opus-5-5"


@pytest.fixture
def bedrock(gateway: RunningTether, upstream: RunningFake) -> RunningTether:
    give_clouds(gateway, "p", upstream)
    return gateway


@pytest.fixture
def client(bedrock: RunningTether) -> Iterator[anthropic.AnthropicBedrock]:
    key = bedrock.create_agent("bedrock-sdk", "p")
    made = anthropic.AnthropicBedrock(
        api_key=key, base_url=f"{bedrock.url}/bedrock", aws_region=BEDROCK_REGION, max_retries=2
    )
    yield made
    made.close()


def events(tether: RunningTether, **params: str) -> list[dict]:
    found: list[dict] = tether.call("GET", "/audit", params={"limit": 200, **params}).json()
    return found


def completed(tether: RunningTether, count: int) -> list[dict]:
    deadline = time.monotonic() + 5
    while len(done := events(tether, action="model:messages:completed")) < count:
        assert time.monotonic() < deadline, "the call was never settled"
        time.sleep(0.05)
    return done


def test_the_bedrock_sdk_streams_and_calls_through_tether_priced_as_the_anthropic_model(
    bedrock: RunningTether, upstream: RunningFake, client: anthropic.AnthropicBedrock
) -> None:
    upstream.fake.enqueue(FakeReply(text="streamed on Bedrock", output_tokens=40))
    with client.beta.messages.stream(
        model=SONNET,
        max_tokens=100,
        betas=["context-1m-2025-08-07"],
        messages=[{"role": "user", "content": "hi"}],
    ) as stream:
        assert stream.get_final_text() == "streamed on Bedrock"
    message = client.messages.create(
        model=SONNET, max_tokens=100, messages=[{"role": "user", "content": "again"}]
    )
    assert message.content[0].text == "Hello from the fake upstream."  # type: ignore[union-attr]
    sent = [r for r in upstream.fake.received if r.path.startswith("/model/")]
    assert [r.path.rsplit("/", 1)[-1] for r in sent] == ["invoke-with-response-stream", "invoke"]
    assert sent[0].body["anthropic_version"]
    assert sent[0].body["anthropic_beta"] == ["context-1m-2025-08-07"]
    assert "model" not in sent[0].body
    assert sent[0].headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAFAKE")
    done = completed(bedrock, 2)
    assert {e["resource"] for e in done} == {"anthropic:model/claude-sonnet-4-5-20250929"}
    for event in done:
        usage = event["attributes"]["usage"]
        expected = (usage["input_tokens"] * 3 + usage["output_tokens"] * 15) / 1_000_000
        assert event["attributes"]["cost_usd"] == pytest.approx(expected)
        assert event["source"] == "bedrock"


def test_a_streamed_tool_call_reaches_the_sdk_whole_and_a_broken_stream_ends_in_its_exception(
    bedrock: RunningTether, upstream: RunningFake, client: anthropic.AnthropicBedrock
) -> None:
    """The tool call is held until judged and then relayed as Bedrock's own frames; an
    exception frame mid-stream reaches the SDK with upstream's message."""
    upstream.fake.enqueue(
        FakeReply(kind="tool_use", tool_name="Bash", tool_input={"command": "ls -la"}, chunks=4)
    )
    with client.messages.stream(
        model=SONNET, max_tokens=100, messages=[{"role": "user", "content": "list"}]
    ) as stream:
        message = stream.get_final_message()
    (use,) = [block for block in message.content if block.type == "tool_use"]
    assert use.name == "Bash" and use.input == {"command": "ls -la"}
    assert message.stop_reason == "tool_use"
    upstream.fake.enqueue(FakeReply(text="abcdefgh" * 10, chunks=8, break_after_chunks=3))
    seen: list[str] = []
    with (
        pytest.raises(anthropic.APIError) as broken,
        client.messages.stream(
            model=SONNET, max_tokens=100, messages=[{"role": "user", "content": "more"}]
        ) as stream,
    ):
        seen.extend(stream.text_stream)
    assert "Overloaded" in str(broken.value)
    assert "".join(seen) == ("abcdefgh" * 10)[:30], "the deltas before the break were relayed"
    done = completed(bedrock, 2)
    assert sorted(e["result"] for e in done) == ["error", "ok"]
    (judged,) = events(bedrock, action="tool_use:Bash")
    assert judged["attributes"]["tool_use_id"] == use.id
    assert "ls -la" in judged["attributes"]["input_summary"]


def test_a_kill_mid_stream_ends_it_with_an_exception_frame_and_the_retry_is_refused_once(
    bedrock: RunningTether, upstream: RunningFake, client: anthropic.AnthropicBedrock
) -> None:
    upstream.fake.enqueue(FakeReply(text="x" * 400, chunks=40, chunk_delay=0.1))
    session = "bedrock-kill-1"
    errors: list[Exception] = []

    def kill_soon() -> None:
        time.sleep(0.8)
        bedrock.call("POST", f"/sessions/{session}/kill", json={"reason": "runaway deploy"})

    killer = threading.Thread(target=kill_soon)
    killer.start()
    try:
        with client.messages.stream(
            model=OPUS,
            max_tokens=1000,
            messages=[{"role": "user", "content": "long"}],
            extra_headers={"X-Claude-Code-Session-Id": session},
        ) as stream:
            for _ in stream.text_stream:
                pass
    except anthropic.APIError as exc:
        errors.append(exc)
    killer.join()
    assert errors and "runaway deploy" in str(errors[0])
    with pytest.raises(anthropic.APIStatusError) as refused:
        client.messages.create(
            model=OPUS,
            max_tokens=100,
            messages=[{"role": "user", "content": "retry"}],
            extra_headers={"X-Claude-Code-Session-Id": session},
        )
    assert refused.value.status_code == 423
    assert refused.value.response.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert "runaway deploy" in refused.value.message
    denials = [e for e in events(bedrock, session=session) if e["result"] == "deny"]
    assert len(denials) == 1, "the SDK retried a refusal marked x-should-retry: false"


def test_refusals_are_aws_errors_a_budget_not_retried_and_the_breaker_a_throttle(
    bedrock: RunningTether, upstream: RunningFake, client: anthropic.AnthropicBedrock
) -> None:
    budget = bedrock.call(
        "PUT", "/budgets", json={"project": "p", "period": "session", "limit_usd": 1e-6}
    ).json()
    with pytest.raises(anthropic.APIStatusError) as refused:
        client.messages.create(
            model=OPUS,
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Claude-Code-Session-Id": "budget-1"},
        )
    assert refused.value.status_code == 402
    assert refused.value.response.headers["x-amzn-ErrorType"] == "AccessDeniedException"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert "budget" in refused.value.message
    assert len([e for e in events(bedrock, session="budget-1") if e["result"] == "deny"]) == 1
    bedrock.call("DELETE", f"/budgets/{budget['id']}")
    bedrock.set_guards("p", breaker_failures=2, breaker_cooldown_seconds=30)
    upstream.fake.default = FakeReply(
        kind="error", status=429, error_type="rate_limit_error", retry_after=1
    )
    quick = client.with_options(max_retries=0)
    for n in range(2):
        with pytest.raises(anthropic.RateLimitError) as throttled:
            quick.messages.create(
                model=OPUS,
                max_tokens=10,
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"X-Claude-Code-Session-Id": f"storm-{n}"},
            )
        assert throttled.value.response.headers["x-amzn-ErrorType"].startswith("Throttling")
    completed(bedrock, 2)
    reached = len(upstream.fake.received)
    with pytest.raises(anthropic.RateLimitError) as breaker:
        quick.messages.create(
            model=OPUS, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    headers = breaker.value.response.headers
    assert headers["x-amzn-ErrorType"] == "ThrottlingException"
    assert int(headers["retry-after"]) >= 1 and "x-should-retry" not in headers
    assert "kept failing" in breaker.value.message
    assert len(upstream.fake.received) == reached


def test_bedrock_runtime_through_the_aws_broker_is_metered_budgeted_and_guarded(
    bedrock: RunningTether, upstream: RunningFake
) -> None:
    bedrock.create_agent("boto3-broker", "p")
    runtime = agent_client(bedrock, issue_aws_keys(bedrock, "boto3-broker"), "bedrock-runtime")
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hi"}],
    }
    answer = runtime.invoke_model(modelId=OPUS, body=json.dumps(body))
    assert json.loads(answer["body"].read())["content"][0]["text"]
    counted = runtime.count_tokens(
        modelId=OPUS, input={"invokeModel": {"body": json.dumps(body).encode()}}
    )
    assert counted["inputTokens"] > 0
    upstream.fake.enqueue(FakeReply(kind="tool_use", tool_input={"command": "ls"}))
    streamed = runtime.invoke_model_with_response_stream(modelId=OPUS, body=json.dumps(body))
    kinds = [json.loads(e["chunk"]["bytes"])["type"] for e in streamed["body"]]
    assert kinds[-1] == "message_stop"
    done = completed(bedrock, 2)
    assert all(e["source"] == "aws" and e["attributes"]["cost_usd"] > 0 for e in done)
    assert events(bedrock, action="tool_use:Bash"), "the streamed tool call was not judged"
    bedrock.call("PUT", "/budgets", json={"project": "p", "period": "session", "limit_usd": 0.0001})
    with pytest.raises(ClientError) as refused:
        runtime.invoke_model(modelId=OPUS, body=json.dumps(body))
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "budget" in refused.value.response["Error"]["Message"]


def test_bad_requests_and_unserved_operations_are_precise_aws_errors(
    bedrock: RunningTether, upstream: RunningFake
) -> None:
    key = bedrock.create_agent("bedrock-raw", "p")
    with httpx.Client(base_url=f"{bedrock.url}/bedrock", headers={"x-api-key": key}) as raw:
        garbled = raw.post(f"/model/{OPUS}/invoke", content=b"{not json")
        assert garbled.status_code == 400
        assert garbled.headers["x-amzn-ErrorType"] == "ValidationException"
        assert "not valid JSON" in garbled.json()["message"]
        no_max = raw.post(f"/model/{OPUS}/invoke", json={"messages": []})
        assert no_max.status_code == 400 and "max_tokens" in no_max.json()["message"]
        unserved = raw.post(f"/model/{OPUS}/apply-guardrail", json={"messages": []})
        assert unserved.status_code == 404 and "message" in unserved.json()
        unknown = raw.post(f"/model/{OPUS}/invoke", json={}, headers={"x-api-key": "tth_no"})
        assert unknown.status_code == 401
        assert unknown.headers["x-amzn-ErrorType"] == "AccessDeniedException"
        profile = quote(
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
            safe="",
        )
        hidden = raw.post(
            f"/model/{profile}/invoke",
            json={"anthropic_version": "bedrock-2023-05-31", "max_tokens": 10,
                  "messages": [{"role": "user", "content": "hi"}]},
        )  # fmt: skip
        assert hidden.status_code == 400, hidden.text  # was decided and priced as "a1b2c3"
        assert "cannot tell which Claude model" in hidden.json()["message"]
    assert not [r for r in upstream.fake.received if r.path.startswith("/model/")]


def test_a_changed_aws_credential_signs_the_next_call(
    bedrock: RunningTether, upstream: RunningFake, client: anthropic.AnthropicBedrock
) -> None:
    def ask() -> anthropic.types.Message:
        return client.messages.create(
            model=SONNET, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )

    def store(access_key_id: str) -> None:
        stored = bedrock.call(
            "PUT",
            "/projects/p/aws",
            json={
                "access_key_id": access_key_id,
                "secret_access_key": upstream.fake.bedrock.access_key[1],
                "endpoint_url": upstream.url,
                "region": BEDROCK_REGION,
                "account_id": "123456789012",
            },
        )
        assert stored.status_code == 200, stored.text

    assert ask().stop_reason == "end_turn"
    store("AKIAFAKEBEDROCKOTHER1")
    deadline = time.monotonic() + 5
    while True:
        try:
            ask()
        except anthropic.PermissionDeniedError as exc:
            assert "AKIAFAKEBEDROCKOTHER1" in str(exc)
            break
        assert time.monotonic() < deadline, "the old credential still signs"
        time.sleep(0.05)
    store(upstream.fake.bedrock.access_key[0])
    deadline = time.monotonic() + 5
    while True:
        try:
            assert ask().stop_reason == "end_turn"
            break
        except anthropic.PermissionDeniedError:
            assert time.monotonic() < deadline, "the rejected credential still signs"
            time.sleep(0.05)
