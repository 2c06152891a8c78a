"""Upstream credentials: encrypted at rest, never returned, never logged."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from tests.support.server import RunningTether

SECRET = "sk-ant-api03-SUPERSECRETVALUE-0123456789"


def test_credential_is_stored_encrypted_and_never_returned(
    tether: RunningTether, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    tether.create_project("p")
    key = tether.create_agent("a", "p")

    put = tether.call("PUT", "/projects/p/credentials/anthropic", json={"secret": SECRET})
    assert put.status_code == 200
    assert SECRET not in put.text
    assert put.json()["provider"] == "anthropic"

    bodies = [
        tether.call("GET", path).text
        for path in ["/projects/p/credentials", "/projects", "/agents", "/agents/a/keys", "/audit"]
    ]
    for text in bodies:
        assert SECRET not in text and key not in text
    assert SECRET not in caplog.text and key not in caplog.text

    database = tether.settings.resolved_database_url.split("///", 1)[1]
    with sqlite3.connect(database) as conn:
        (sealed,) = conn.execute("SELECT sealed FROM credentials").fetchone()
        dump = "\n".join(conn.iterdump())
    assert SECRET.encode() not in sealed
    assert SECRET not in dump and key not in dump
    assert tether.run(_reveal(tether)) == SECRET


async def _reveal(tether: RunningTether) -> str | None:
    project = await tether.runtime.projects.by_name("p")
    return await tether.runtime.credentials.reveal(project.id, "anthropic")


def test_replacing_and_deleting_a_credential(tether: RunningTether) -> None:
    tether.create_project("p")
    assert (
        tether.call(
            "PUT", "/projects/p/credentials/anthropic", json={"secret": "first-secret"}
        ).status_code
        == 200
    )
    assert (
        tether.call("PUT", "/projects/p/credentials/anthropic", json={"secret": SECRET}).status_code
        == 200
    )
    assert tether.run(_reveal(tether)) == SECRET
    assert len(tether.call("GET", "/projects/p/credentials").json()) == 1
    assert tether.call("DELETE", "/projects/p/credentials/anthropic").status_code == 204
    assert tether.call("GET", "/projects/p/credentials").json() == []
    assert tether.call("DELETE", "/projects/p/credentials/anthropic").status_code == 404


def test_unknown_provider_and_short_secret_are_rejected(tether: RunningTether) -> None:
    tether.create_project("p")
    unknown = tether.call("PUT", "/projects/p/credentials/openai", json={"secret": SECRET})
    assert unknown.status_code == 400
    assert "anthropic" in unknown.json()["error"]["message"]
    short = tether.call("PUT", "/projects/p/credentials/anthropic", json={"secret": "x"})
    assert short.status_code == 400
    assert SECRET not in short.text
