"""``GET /v1/models`` through tether with the ``anthropic`` SDK: relayed with the project's
key, cut to what the agent's policy permits, audited, and refused like any call."""

from __future__ import annotations

from collections.abc import Callable

import anthropic
import httpx
import pytest

from tests.support.audit_trail import written
from tests.support.fake_upstream import RunningFake
from tests.support.server import RunningTether
from tether.fakes.anthropic import FAKE_MODELS

NO_OPUS = """\
permit(principal, action, resource);
@id("no-opus") forbid(principal, action, resource)
  when { resource.arn like "anthropic:model/claude-opus*" };
"""

Sdk = Callable[..., anthropic.Anthropic]


def test_the_model_list_is_what_the_policy_permits(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    key = gateway.create_agent("picker", "p")
    client = sdk(gateway, key, session="s-models")
    everything = [m.id for m in client.models.list()]
    assert everything == [m["id"] for m in FAKE_MODELS]

    gateway.apply_policy("p", NO_OPUS)
    listed = [m.id for m in client.models.list()]
    assert listed and not any(m.startswith("claude-opus") for m in listed)
    assert set(everything) - set(listed) == {"claude-opus-5-5", "claude-opus-4-7"}
    assert client.models.retrieve("claude-haiku-5-5").display_name == "Claude Haiku 5.5"
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        client.models.retrieve("claude-opus-5-5")
    assert "no-opus" in str(refused.value)

    paged = client.models.list(limit=2)
    assert [m.id for m in paged.data] == ["claude-sonnet-5-5"], "opus cut from the first page"
    assert paged.has_more
    events = gateway.call("GET", "/audit", params={"session": "s-models"}).json()
    assert [e["action"] for e in events].count("model:list") == 5, "two lists, two reads, one page"
    assert all(e["agent"] == "picker" for e in events)
    # the opus read was refused: not run, not settled
    completed = written(gateway, "s-models", "model:list:completed", 4)
    assert sorted((e["result"], e["resource"]) for e in completed) == [
        ("ok", "anthropic:model/claude-haiku-5-5"),
        *[("ok", "anthropic:models")] * 3,
    ]


def test_a_model_list_upstream_could_not_answer_is_settled_as_an_error(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    client = sdk(gateway, gateway.create_agent("picker", "p"), session="s-down", retries=0)
    upstream.stop()
    with pytest.raises(anthropic.APIStatusError):
        client.models.list()
    [completed] = written(gateway, "s-down", "model:list:completed", 1)
    assert completed["result"] == "error"


def test_a_killed_session_and_a_bad_key_are_refused_once(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    key = gateway.create_agent("picker", "p")
    client = sdk(gateway, key, session="s-kill", retries=2)
    assert client.models.list().data
    killed = gateway.call("POST", "/sessions/s-kill/kill", json={"reason": "drill"})
    assert killed.status_code == 200, killed.text
    with pytest.raises(anthropic.APIStatusError) as stopped:
        client.models.list()
    assert stopped.value.status_code == 423 and "drill" in str(stopped.value)
    refusals = gateway.call("GET", "/audit", params={"session": "s-kill", "result": "deny"})
    assert len(refusals.json()) == 1, "not retried"
    with pytest.raises(anthropic.AuthenticationError):
        sdk(gateway, "tth_not-a-key", retries=2).models.list()


def test_unknown_model_is_upstreams_404(
    gateway: RunningTether, upstream: RunningFake, sdk: Sdk
) -> None:
    client = sdk(gateway, gateway.create_agent("picker", "p"))
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-nope")


@pytest.mark.parametrize(
    "path",
    ["/v1/models/..%2Ffiles", "/v1/files/..%2Fmodels", "/v1/messages/batches/..%2F..%2Fmodels",
     "/v1/models/%2E%2E"],
)  # fmt: skip
def test_an_encoded_slash_or_dot_segment_in_an_id_is_refused(
    gateway: RunningTether, upstream: RunningFake, path: str
) -> None:
    """aiohttp hands the segment back decoded: ``/v1/models/..%2Ffiles`` was decided as a
    ``model:list`` and listed the project's files upstream (and a file read could fetch a
    batch's results past the batch door's decision)."""
    key = gateway.create_agent("dots", "p")
    response = httpx.get(
        f"{gateway.url}{path}",
        headers={"x-api-key": key, "anthropic-version": "2023-06-01",
                 "anthropic-beta": "files-api-2025-04-14"},
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 400, response.text
    assert "not a plain id" in response.json()["error"]["message"]
