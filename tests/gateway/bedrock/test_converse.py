"""Bedrock's Converse and ConverseStream through tether, driven by boto3's
``bedrock-runtime`` client: at ``/bedrock`` (``endpoint_url``, the tether key as the
Bedrock API key) and through the AWS broker at ``/aws`` (the agent's tether key pair),
against the fake Bedrock, which checks tether's SigV4 signature."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError, EventStreamError

from tests.support.aws import agent_client, issue_aws_keys
from tests.support.clouds import BEDROCK_REGION, give_clouds
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply

SONNET = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
OPUS = "us.anthropic.claude-opus-5-5"
HI = [{"role": "user", "content": [{"text": "hi"}]}]


@pytest.fixture
def bedrock(gateway: RunningTether, upstream: RunningFake) -> RunningTether:
    give_clouds(gateway, "p", upstream)
    return gateway


@pytest.fixture
def runtime(bedrock: RunningTether) -> Iterator[Any]:
    """boto3 at ``/bedrock``, unsigned, the tether key in ``x-api-key`` (over HTTPS,
    ``AWS_BEARER_TOKEN_BEDROCK`` carries it; botocore sends bearer tokens only over TLS)."""
    key = bedrock.create_agent("converse-boto3", "p")
    client = boto3.client(
        "bedrock-runtime",
        endpoint_url=f"{bedrock.url}/bedrock",
        region_name=BEDROCK_REGION,
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )
    client.meta.events.register(
        "before-send.bedrock-runtime.*",
        lambda request, **_: request.headers.__setitem__("x-api-key", key),
    )
    yield client
    client.close()


def events(tether: RunningTether, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = tether.call(
        "GET", "/audit", params={"limit": 200, **params}
    ).json()
    return found


def completed(tether: RunningTether, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while len(done := events(tether, action="model:messages:completed")) < count:
        assert time.monotonic() < deadline, "the call was never settled"
        time.sleep(0.05)
    return done


def sent_to_bedrock(upstream: RunningFake) -> list[Any]:
    return [r for r in upstream.fake.received if r.path.startswith("/model/")]


def test_converse_and_its_stream_are_relayed_signed_and_priced_from_their_usage(
    bedrock: RunningTether, upstream: RunningFake, runtime: Any
) -> None:
    upstream.fake.enqueue(FakeReply(text="conversed", output_tokens=30, input_tokens=200))
    answer = runtime.converse(
        modelId=SONNET,
        messages=HI,
        system=[{"text": "be brief"}],
        inferenceConfig={"maxTokens": 100},
    )
    assert answer["output"]["message"]["content"] == [{"text": "conversed"}]
    assert answer["usage"]["outputTokens"] == 30
    upstream.fake.enqueue(FakeReply(text="streamed converse", chunks=4, output_tokens=40))
    streamed = runtime.converse_stream(
        modelId=SONNET, messages=HI, inferenceConfig={"maxTokens": 100}
    )
    kinds, text = [], ""
    for event in streamed["stream"]:
        (kind,) = event
        kinds.append(kind)
        text += event.get("contentBlockDelta", {}).get("delta", {}).get("text", "")
    assert text == "streamed converse"
    assert kinds[0] == "messageStart" and kinds[-2:] == ["messageStop", "metadata"]
    sent = sent_to_bedrock(upstream)
    assert [r.path.rsplit("/", 1)[-1] for r in sent] == ["converse", "converse-stream"]
    assert sent[0].body["system"] == [{"text": "be brief"}], "the body was not relayed as sent"
    assert sent[0].headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIAFAKE")
    done = sorted(completed(bedrock, 2), key=lambda e: e["attributes"]["usage"]["output_tokens"])
    assert [e["attributes"]["usage"]["output_tokens"] for e in done] == [30, 40]
    assert done[0]["attributes"]["usage"]["input_tokens"] == 200
    for event in done:
        assert event["source"] == "bedrock"
        assert event["resource"] == "anthropic:model/claude-sonnet-4-5-20250929"
        usage = event["attributes"]["usage"]
        expected = (usage["input_tokens"] * 3 + usage["output_tokens"] * 15) / 1_000_000
        assert event["attributes"]["cost_usd"] == pytest.approx(expected)


def test_a_repeated_failing_tool_call_is_judged_held_and_cut_from_the_stream(
    bedrock: RunningTether, upstream: RunningFake, runtime: Any
) -> None:
    bedrock.set_guards("p", tool_repeat_limit=2)
    upstream.fake.default = FakeReply(kind="tool_use", tool_input={"command": "make deploy"})
    conversation: list[dict[str, Any]] = [{"role": "user", "content": [{"text": "deploy it"}]}]

    def answered(content: list[dict[str, Any]]) -> None:
        (use,) = [block["toolUse"] for block in content if "toolUse" in block]
        assert use["name"] == "Bash" and use["input"] == {"command": "make deploy"}
        conversation.append({"role": "assistant", "content": content})
        failed = {"text": "make: *** [deploy] Error 2"}
        result = {"toolUseId": use["toolUseId"], "content": [failed], "status": "error"}
        conversation.append({"role": "user", "content": [{"toolResult": result}]})

    for _ in range(2):
        answer = runtime.converse(
            modelId=OPUS, messages=conversation, inferenceConfig={"maxTokens": 100}
        )
        answered(answer["output"]["message"]["content"])
    completed(bedrock, 2)  # the audit trail is written after the answer: wait for it
    assert len(events(bedrock, action="tool_use:Bash")) == 2
    streamed = runtime.converse_stream(
        modelId=OPUS, messages=conversation, inferenceConfig={"maxTokens": 100}
    )
    seen: list[str] = []
    with pytest.raises(EventStreamError) as cut:
        for event in streamed["stream"]:
            seen.extend(event)
    streamed["stream"].close()
    assert "gave the same result 2 times" in cut.value.response["Error"]["Message"]
    assert seen == ["messageStart"], "the refused tool call reached the agent"
    (cut_call,) = [e for e in completed(bedrock, 3) if e["result"] == "cut"]
    assert "gave the same result" in cut_call["reason"]


def test_a_kill_mid_stream_ends_converse_stream_with_tethers_reason(
    bedrock: RunningTether, upstream: RunningFake, runtime: Any
) -> None:
    upstream.fake.enqueue(FakeReply(text="x" * 400, chunks=40, chunk_delay=0.1))
    session = "converse-kill-1"
    runtime.meta.events.register(
        "before-send.bedrock-runtime.*",
        lambda request, **_: request.headers.__setitem__("X-Claude-Code-Session-Id", session),
    )

    def kill_soon() -> None:
        time.sleep(0.8)
        bedrock.call("POST", f"/sessions/{session}/kill", json={"reason": "runaway deploy"})

    killer = threading.Thread(target=kill_soon)
    killer.start()
    streamed = runtime.converse_stream(
        modelId=OPUS, messages=HI, inferenceConfig={"maxTokens": 1000}
    )
    with pytest.raises(EventStreamError) as cut:
        for _ in streamed["stream"]:
            pass
    streamed["stream"].close()
    killer.join()
    assert "runaway deploy" in cut.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as refused:
        runtime.converse(modelId=OPUS, messages=HI, inferenceConfig={"maxTokens": 10})
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 423
    assert "runaway deploy" in refused.value.response["Error"]["Message"]


def test_a_budget_caps_inference_config_and_a_session_limit_cuts_the_stream(
    bedrock: RunningTether, upstream: RunningFake, runtime: Any
) -> None:
    bedrock.call("PUT", "/budgets", json={"project": "p", "period": "session", "limit_usd": 0.05})
    runtime.converse(modelId=OPUS, messages=HI)
    config = sent_to_bedrock(upstream)[-1].body["inferenceConfig"]
    assert 0 < config["maxTokens"] < 4096, "the budget's output cap was not written into the body"
    upstream.fake.enqueue(FakeReply(text="long", fill_text=True, output_tokens=3000, chunks=60))
    streamed = runtime.converse_stream(modelId=OPUS, messages=HI)
    with pytest.raises(EventStreamError) as cut:
        for _ in streamed["stream"]:
            pass
    streamed["stream"].close()
    assert "budget" in cut.value.response["Error"]["Message"]
    completed(bedrock, 2)
    with pytest.raises(ClientError) as refused:
        runtime.converse(modelId=OPUS, messages=HI)
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 402


def test_converse_through_the_aws_broker_is_a_metered_model_call(
    bedrock: RunningTether, upstream: RunningFake
) -> None:
    bedrock.create_agent("converse-broker", "p")
    runtime = agent_client(bedrock, issue_aws_keys(bedrock, "converse-broker"), "bedrock-runtime")
    answer = runtime.converse(modelId=OPUS, messages=HI, inferenceConfig={"maxTokens": 50})
    assert answer["output"]["message"]["content"][0]["text"]
    upstream.fake.enqueue(FakeReply(kind="tool_use", tool_input={"command": "ls"}))
    streamed = runtime.converse_stream(modelId=OPUS, messages=HI, inferenceConfig={"maxTokens": 50})
    kinds = [next(iter(e)) for e in streamed["stream"]]
    assert kinds[-1] == "metadata" and "contentBlockStart" in kinds
    done = completed(bedrock, 2)
    assert all(e["source"] == "aws" and e["attributes"]["cost_usd"] > 0 for e in done)
    assert events(bedrock, action="tool_use:Bash"), "the streamed tool call was not judged"
    bedrock.call("PUT", "/budgets", json={"project": "p", "period": "session", "limit_usd": 1e-6})
    with pytest.raises(ClientError) as refused:
        runtime.converse(modelId=OPUS, messages=HI, inferenceConfig={"maxTokens": 50})
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "budget" in refused.value.response["Error"]["Message"]
    runtime.close()


def test_bad_converse_requests_are_validation_errors_before_bedrock(
    bedrock: RunningTether, upstream: RunningFake
) -> None:
    key = bedrock.create_agent("converse-raw", "p")
    with httpx.Client(base_url=f"{bedrock.url}/bedrock", headers={"x-api-key": key}) as raw:
        zero = raw.post(
            f"/model/{OPUS}/converse", json={"messages": HI, "inferenceConfig": {"maxTokens": 0}}
        )
        assert zero.status_code == 400
        assert zero.headers["x-amzn-ErrorType"] == "ValidationException"
        assert "inferenceConfig.maxTokens" in zero.json()["message"]
        no_messages = raw.post(f"/model/{OPUS}/converse-stream", json={"system": []})
        assert no_messages.status_code == 400 and "messages" in no_messages.json()["message"]
        garbled = raw.post(f"/model/{OPUS}/converse", content=b"{not json")
        assert garbled.status_code == 400 and "not valid JSON" in garbled.json()["message"]
        not_blocks = raw.post(
            f"/model/{OPUS}/converse", json={"messages": [{"role": "user", "content": 5}]}
        )
        assert not_blocks.status_code == 400, not_blocks.text  # was a 500
        assert "messages[0].content" in not_blocks.json()["message"]
    assert not sent_to_bedrock(upstream)
