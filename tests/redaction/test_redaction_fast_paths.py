"""Ids skip the secret scan (it costs tens of microseconds for each new one, on every
event): only shapes that no secret pattern can match, and the full scan agrees."""

from __future__ import annotations

import uuid

from tether.redaction.text import REDACTED, _redact_scan, redact_text


def test_session_ids_shaped_as_uuids_are_kept_as_the_full_scan_keeps_them() -> None:
    for _ in range(2_000):
        for text in (str(uuid.uuid4()), str(uuid.uuid4()).upper(), uuid.uuid4().hex):
            assert redact_text(text) == text == _redact_scan(text)


def test_texts_around_an_id_are_still_scanned() -> None:
    session = str(uuid.uuid4())
    for text in (f"sk-ant-{session}", f"Bearer {session}", f"{session} ", f"{session}x"):
        assert redact_text(text) == _redact_scan(text)
    assert redact_text(f"sk-ant-{session}") == REDACTED
    assert redact_text(f"Authorization: Bearer {session}").endswith(REDACTED)
