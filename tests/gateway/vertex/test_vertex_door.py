"""``/vertex`` driven by the ``anthropic`` SDK's ``AnthropicVertex`` against the fake Vertex
AI, which accepts only access tokens its fake Google token endpoint issued for the
service account tether holds (the agent holds its tether key, nothing of Google's)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest
from typer.testing import CliRunner

from tests.support.clouds import VERTEX_REGION, give_clouds
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.cli.main import app
from tether.fakes.anthropic import FakeReply

OPUS = "claude-opus-4-1@20250805"


@pytest.fixture
def vertex(gateway: RunningTether, upstream: RunningFake) -> RunningTether:
    give_clouds(gateway, "p", upstream)
    return gateway


def vertex_client(
    tether: RunningTether, key: str, region: str = VERTEX_REGION
) -> anthropic.AnthropicVertex:
    return anthropic.AnthropicVertex(
        region=region,
        project_id="whatever-the-agent-says",
        access_token=key,
        base_url=f"{tether.url}/vertex/v1",
        max_retries=2,
    )


@pytest.fixture
def client(vertex: RunningTether) -> Iterator[anthropic.AnthropicVertex]:
    made = vertex_client(vertex, vertex.create_agent("vertex-sdk", "p"))
    yield made
    made.close()


def completed(tether: RunningTether, count: int) -> list[dict]:
    deadline = time.monotonic() + 5
    while True:
        done: list[dict] = tether.call(
            "GET", "/audit", params={"action": "model:messages:completed"}
        ).json()
        if len(done) >= count:
            return done
        assert time.monotonic() < deadline, "the call was never settled"
        time.sleep(0.05)


def test_the_vertex_sdk_streams_and_calls_with_tokens_tether_minted_priced_as_the_model(
    vertex: RunningTether, upstream: RunningFake, client: anthropic.AnthropicVertex
) -> None:
    upstream.fake.enqueue(FakeReply(text="streamed on Vertex"))
    with client.messages.stream(
        model=OPUS, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        assert stream.get_final_text() == "streamed on Vertex"
    message = client.messages.create(
        model=OPUS, max_tokens=100, messages=[{"role": "user", "content": "again"}]
    )
    assert message.content[0].text == "Hello from the fake upstream."  # type: ignore[union-attr]
    sent = [r for r in upstream.fake.received if "/publishers/anthropic/" in r.path]
    assert [r.path.rsplit(":", 1)[-1] for r in sent] == ["streamRawPredict", "rawPredict"]
    assert all(r.path.startswith("/v1/projects/agents-gcp/locations/us-east5/") for r in sent)
    tokens = {r.headers["Authorization"] for r in sent}
    assert len(tokens) == 1 and tokens.pop().startswith("Bearer ya29.fake-")
    assert upstream.fake.vertex.assertions == 1, "the token was minted again while fresh"
    assert sent[0].body["anthropic_version"] and "model" not in sent[0].body
    for event in completed(vertex, 2):
        assert event["source"] == "vertex"
        assert event["resource"] == "anthropic:model/claude-opus-4-1-20250805"
        usage = event["attributes"]["usage"]
        expected = (usage["input_tokens"] * 15 + usage["output_tokens"] * 75) / 1_000_000
        assert event["attributes"]["cost_usd"] == pytest.approx(expected)
    counted = client.messages.count_tokens(
        model=OPUS, messages=[{"role": "user", "content": "count me"}]
    )
    assert counted.input_tokens > 0


def test_an_access_token_about_to_expire_is_minted_again_before_it_is_used(
    vertex: RunningTether, upstream: RunningFake, client: anthropic.AnthropicVertex
) -> None:
    upstream.fake.vertex.token_seconds = 240
    for n in range(3):
        client.messages.create(
            model=OPUS, max_tokens=10, messages=[{"role": "user", "content": f"call {n}"}]
        )
    assert upstream.fake.vertex.assertions == 3
    tokens = {r.headers["Authorization"] for r in upstream.fake.received if "/models/" in r.path}
    assert len(tokens) == 3


def test_refusals_are_google_errors_with_tethers_reason_and_not_retried(
    vertex: RunningTether, upstream: RunningFake
) -> None:
    vertex.apply_policy(
        "p",
        "permit(principal, action, resource);\n"
        '@reason("EU data stays out of agents")\n'
        'forbid(principal, action, resource) when { resource.tags.region == "europe-west1" };\n',
    )
    key = vertex.create_agent("vertex-eu", "p")
    eu = vertex_client(vertex, key, "europe-west1")
    with eu, pytest.raises(anthropic.PermissionDeniedError) as denied:
        eu.messages.create(model=OPUS, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    error = denied.value.body["error"]  # type: ignore[index]
    assert error["status"] == "PERMISSION_DENIED" and error["code"] == 403
    assert "EU data stays out of agents" in error["message"]
    assert denied.value.response.headers["x-should-retry"] == "false"
    decisions = vertex.call("GET", "/audit", params={"agent": "vertex-eu"}).json()
    assert [e["result"] for e in decisions if e["action"] == "model:messages"] == ["deny"]
    assert not [r for r in upstream.fake.received if "europe-west1" in r.path]
    vertex.create_project("no-google", upstream.fake.api_key)
    bare = vertex_client(vertex, vertex.create_agent("vertex-bare", "no-google"))
    with bare, pytest.raises(anthropic.APIStatusError) as unconfigured:
        bare.with_options(max_retries=0).messages.create(
            model=OPUS, max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert unconfigured.value.status_code == 503
    assert "tether gcp set-credentials no-google" in unconfigured.value.message


def test_tether_gcp_set_credentials_seals_the_key_file_and_never_shows_it(
    vertex: RunningTether,
    upstream: RunningFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = upstream.fake.vertex.new_service_account(upstream.url, "cli-project")
    vertex.create_project("q", upstream.fake.api_key)
    monkeypatch.setenv("TETHER_URL", vertex.url)
    monkeypatch.setenv("TETHER_ADMIN_TOKEN", vertex.admin_token)
    runner = CliRunner()
    stored = runner.invoke(
        app,
        ["gcp", "set-credentials", "q", "--endpoint-url", upstream.url, "--json"],
        input=json.dumps(key),
    )
    assert stored.exit_code == 0, stored.output
    assert json.loads(stored.output)["client_email"] == key["client_email"]
    shown = runner.invoke(app, ["gcp", "show", "q", "--json"])
    assert json.loads(shown.output)["gcp_project"] == "cli-project"
    private = key["private_key"].splitlines()[1]
    everything = stored.output + shown.output + json.dumps(vertex.call("GET", "/audit").json())
    assert private not in everything
    with vertex_client(vertex, vertex.create_agent("vertex-q", "q")) as agent:
        agent.messages.create(
            model=OPUS, max_tokens=10, messages=[{"role": "user", "content": "x"}]
        )
    assert upstream.fake.received[-1].path.startswith("/v1/projects/cli-project/")
    broken = runner.invoke(app, ["gcp", "set-credentials", "q"], input='{"type": "user"}')
    assert broken.exit_code != 0
    assert "service_account.type: Input should be 'service_account'" in broken.output
    database = (vertex.settings.data_dir.parent / "tether.db").read_bytes()
    assert private.encode() not in database


def test_an_encoded_slash_in_the_model_is_refused_before_it_is_decided(
    vertex: RunningTether, upstream: RunningFake
) -> None:
    """aiohttp hands the segment back decoded: a Haiku call with ``%2F..%2F`` in its model
    was decided (and priced) as Haiku and sent to Opus, past a policy forbidding Opus."""
    vertex.apply_policy(
        "p",
        "permit(principal, action, resource);\n"
        "forbid(principal, action, resource)\n"
        '  when { resource.arn like "anthropic:model/claude-opus*" };\n',
    )
    key = vertex.create_agent("vertex-dots", "p")
    sent = len(upstream.fake.received)
    response = httpx.post(
        f"{vertex.url}/vertex/v1/projects/p/locations/{VERTEX_REGION}/publishers/anthropic/"
        f"models/claude-haiku-4-5@20251001%2F..%2F{OPUS}:rawPredict",
        json={"anthropic_version": "vertex-2023-10-16", "max_tokens": 10,
              "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 400, response.text
    assert "not a plain id" in response.json()["error"]["message"]
    assert len(upstream.fake.received) == sent, "nothing reached Vertex"
