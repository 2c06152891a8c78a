"""A corrupt event-stream frame from Bedrock (a bad prelude CRC, a bad message CRC, a
length no frame has) ends the call at once: read once, upstream closed (it stops
generating), the agent's stream ended with one exception frame as Bedrock ends a broken
stream, the call audited as failed with the reason and charged by the cut-answer rule
(``pricing.cut``): the input upstream reported, the output seen — the unreadable bytes
counted as output — plus the unseen tail. Driven by boto3's ``bedrock-runtime`` client at
``/bedrock``, against the fake Bedrock's ``corrupt_frame`` reply."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.eventstream import EventStreamBuffer
from botocore.exceptions import EventStreamError

from tests.budgets.test_budgets import budget
from tests.gateway.anthropic.test_cut_answers import _spent
from tests.gateway.anthropic.test_stream_accounting import completed
from tests.support.clouds import BEDROCK_REGION, give_clouds
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FakeReply
from tether.pricing.cut import UNSEEN_STREAM_TOKENS

SONNET = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"  # $3 input, $15 output
INPUT, OUTPUT, HIGHEST_INPUT = 3 / 1e6, 15 / 1e6, 6 / 1e6  # the last a 1-hour cache write
PIECES, BROKEN_AT, DELAY = 80, 4, 0.025
"""80 deltas of about 100 tokens, 25 ms apart (2 s for the whole answer); the fifth one
corrupt."""
GENERATED = 8000
MAX_TOKENS = 10_000


def corrupt_reply(how: str) -> FakeReply:
    return FakeReply(
        kind="corrupt_frame",
        error_type=how,
        text="all work and no play makes a dull answer. ",
        fill_text=True,
        input_tokens=1000,
        output_tokens=GENERATED,
        chunks=PIECES,
        chunk_delay=DELAY,
        break_after_chunks=BROKEN_AT,
    )


@pytest.fixture
def bedrock(gateway: RunningTether, upstream: RunningFake) -> RunningTether:
    give_clouds(gateway, "p", upstream)
    return gateway


@pytest.fixture
def runtime(bedrock: RunningTether) -> Iterator[Callable[[str], Any]]:
    """boto3 at ``/bedrock`` as in ``test_converse``: unsigned, the tether key in
    ``x-api-key``, and the session named."""
    key = bedrock.create_agent("corrupt-boto3", "p")
    made: list[Any] = []

    def client(session: str) -> Any:
        runtime = boto3.client(
            "bedrock-runtime",
            endpoint_url=f"{bedrock.url}/bedrock",
            region_name=BEDROCK_REGION,
            config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
        )
        headers = {"x-api-key": key, "X-Claude-Code-Session-Id": session}
        runtime.meta.events.register(
            "before-send.bedrock-runtime.*",
            lambda request, **_: request.headers.update(headers),
        )
        made.append(runtime)
        return runtime

    yield client
    for runtime in made:
        runtime.close()


def assert_settled_as_cut(
    bedrock: RunningTether,
    upstream: RunningFake,
    session: str,
    budget_id: str,
    input_usd: float,
) -> dict[str, Any]:
    """The call failed naming the corrupt frame, upstream was hung up on before its answer
    ended (the fake counts a stream whose client left in ``abandoned``; tether read on to
    the end of the answer), and the charge is the cut-answer rule's, in the audit and the
    budget alike: ``input_usd`` for the input, the output seen (the unreadable bytes
    included) and the unseen tail at the output price."""
    event = completed(bedrock, session)
    assert event["result"] == "error", event
    assert event["code"] == "http_502"
    assert "corrupt event-stream frame" in event["reason"], event["reason"]
    assert "closed the stream at once" in event["reason"]
    deadline = time.monotonic() + 5
    while upstream.fake.abandoned == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert upstream.fake.abandoned == 1, "tether read on: Bedrock generated the whole answer"
    attributes = event["attributes"]
    usage = attributes["usage"]
    assert attributes["usage_final"] is False
    per_piece = GENERATED // PIECES
    assert (BROKEN_AT + 1) * per_piece <= usage["output_tokens"] < GENERATED // 4, (
        "the deltas read and the corrupt frame's bytes are counted as output",
        usage,
    )
    expected = input_usd + (usage["output_tokens"] + UNSEEN_STREAM_TOKENS) * OUTPUT
    assert attributes["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert _spent(bedrock, budget_id) == pytest.approx(expected, abs=1e-6)
    return event


@pytest.mark.parametrize("how", ["prelude_crc", "message_crc", "length"])
def test_a_corrupt_frame_ends_invoke_model_with_response_stream_at_once(
    bedrock: RunningTether, upstream: RunningFake, runtime: Callable[[str], Any], how: str
) -> None:
    daily = budget(bedrock, project="p", period="daily", limit_usd=10)
    upstream.fake.enqueue(corrupt_reply(how))
    session = f"corrupt-invoke-{how}"
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": MAX_TOKENS,
        "messages": [{"role": "user", "content": "write it all"}],
    }
    streamed = runtime(session).invoke_model_with_response_stream(
        modelId=SONNET, body=json.dumps(body)
    )
    kinds: list[str] = []
    with pytest.raises(EventStreamError) as broken:
        for event in streamed["body"]:
            kinds.append(json.loads(event["chunk"]["bytes"])["type"])
    streamed["body"].close()
    error = broken.value.response["Error"]
    assert error["Code"] == "internalServerException"
    assert "corrupt event-stream frame" in error["Message"], error
    assert kinds.count("content_block_delta") == BROKEN_AT, "the deltas before it were relayed"
    assert "message_stop" not in kinds
    event = assert_settled_as_cut(bedrock, upstream, session, daily["id"], 1000 * INPUT)
    assert event["attributes"]["usage"]["input_tokens"] == 1000, "message_start reported it"


def test_a_corrupt_frame_ends_converse_stream_at_once(
    bedrock: RunningTether, upstream: RunningFake, runtime: Callable[[str], Any]
) -> None:
    daily = budget(bedrock, project="p", period="daily", limit_usd=10)
    upstream.fake.enqueue(corrupt_reply("message_crc"))
    session = "corrupt-converse"
    client = runtime(session)
    sent: list[int] = []
    client.meta.events.register(
        "before-send.bedrock-runtime.*", lambda request, **_: sent.append(len(request.body))
    )
    streamed = client.converse_stream(
        modelId=SONNET,
        messages=[{"role": "user", "content": [{"text": "write it all"}]}],
        inferenceConfig={"maxTokens": MAX_TOKENS},
    )
    kinds: list[str] = []
    with pytest.raises(EventStreamError) as broken:
        for event in streamed["stream"]:
            kinds.extend(event)
    streamed["stream"].close()
    error = broken.value.response["Error"]
    assert error["Code"] == "internalServerException"
    assert "corrupt event-stream frame" in error["Message"], error
    assert kinds == ["messageStart"] + ["contentBlockDelta"] * BROKEN_AT
    # Converse reports its usage last (``metadata``): the input unreported is charged at
    # its worst case, the request's size estimate at the highest input price
    (size,) = sent
    input_usd = (size // 4 + 1) * HIGHEST_INPUT
    event = assert_settled_as_cut(bedrock, upstream, session, daily["id"], input_usd)
    assert event["attributes"]["usage"]["input_tokens"] == 0


def test_the_agent_gets_one_exception_frame_and_nothing_after_it(
    bedrock: RunningTether, upstream: RunningFake
) -> None:
    """On the wire: every frame whole and CRC-checked by botocore's own decoder, the
    deltas before the corrupt frame, one exception frame, the end (it was one exception
    frame per later chunk, each read parsing the same bytes again)."""
    key = bedrock.create_agent("corrupt-raw", "p")
    upstream.fake.enqueue(corrupt_reply("prelude_crc"))
    answer = httpx.post(
        f"{bedrock.url}/bedrock/model/{SONNET}/invoke-with-response-stream",
        json={
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": MAX_TOKENS,
            "messages": [{"role": "user", "content": "write it all"}],
        },
        headers={"x-api-key": key, "X-Claude-Code-Session-Id": "corrupt-raw"},
        timeout=30,
    )
    assert answer.status_code == 200
    decoder = EventStreamBuffer()
    decoder.add_data(answer.content)
    frames = list(decoder)
    types = [f.headers[":message-type"] for f in frames]
    assert types[-1] == "exception" and types.count("exception") == 1, types
    assert frames[-1].headers[":exception-type"] == "internalServerException"
    assert b"prelude CRC" in frames[-1].payload
    events = [
        json.loads(base64.b64decode(json.loads(f.payload)["bytes"]))["type"] for f in frames[:-1]
    ]
    assert events.count("content_block_delta") == BROKEN_AT, events
    completed(bedrock, "corrupt-raw")
