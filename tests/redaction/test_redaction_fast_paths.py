"""Ids skip the secret scan (it costs tens of microseconds for each new one, on every
event): only shapes that no secret pattern can match, and the full scan agrees."""

from __future__ import annotations

import random
import string
import uuid

import pytest

from tether.audit.normalise import clean_text
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


def test_request_ids_are_kept_as_the_full_scan_keeps_them_and_only_their_shape() -> None:
    alphabet = string.ascii_letters + string.digits
    for length in range(1, 40):
        for _ in range(50):
            text = "req_" + "".join(random.choices(alphabet, k=length))
            assert clean_text(text) == redact_text(text) == text == _redact_scan(text)
    aws_shaped = "req_" + "".join(random.choices(alphabet, k=40))
    assert redact_text(aws_shaped) == _redact_scan(aws_shaped) != aws_shaped
    for text in ("req_sk-ant-api03-abcdefghijkl", "req_abc Bearer abcdefghijklmnop", "req_"):
        assert redact_text(text) == _redact_scan(text)


def test_word_tokens_are_kept_or_blanked_as_the_full_scan_does() -> None:
    rng = random.Random(29)
    alphabet = string.ascii_letters + string.digits + "_-"
    secrets = [
        "sk-ant-api03-" + "A1b2C3d4" * 5,
        "sk_live_" + "a1B2c3D4e5",
        "tta_" + "x" * 30,
        "AKIA" + "ABCDEFGHIJ012345",
        "ghp_" + "a1B2" * 9,
        "glpat-" + "a1B2c3D4e5F6g7H8",
        "xoxb-" + "1234567890-abc",
        "AIza" + "a1B2c3D4" * 4,
        "aB3" * 13 + "x",  # 40 characters of mixed case with a digit: an AWS secret's shape
    ]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 80))) for _ in range(5_000)]
    texts += [f"req_{uuid.uuid4().hex[:24]}", f"toolu_01{uuid.uuid4().hex[:22]}"]
    texts += [f"{prefix}{secret}{suffix}" for secret in secrets for prefix, suffix in
              (("", ""), ("id-", ""), ("", "_x"), ("x", ""))]  # fmt: skip
    for text in texts:
        assert redact_text(text) == _redact_scan(text), text
    assert redact_text(secrets[0]) == REDACTED
    assert redact_text(secrets[-1]) == REDACTED


def test_a_short_text_blanked_longer_than_its_column_is_cut_to_fit() -> None:
    cleaned = clean_text("DB_PASSWORD=x1", 16)
    assert "x1" not in cleaned and len(cleaned) <= 16, cleaned
    assert clean_text("DB_PASSWORD=x1") == f"DB_PASSWORD={REDACTED}"


def test_free_text_is_kept_or_blanked_as_the_full_scan_does() -> None:
    """The substring pre-check may send harmless text to the full scan, never a secret
    past it: texts made of the patterns' pieces, secrets and prose agree with the scan."""
    rng = random.Random(2912)
    pieces = [
        "sk-ant-api03-" + "A1b2C3d4" * 5, "sk_live_a1B2c3D4e5", "AKIAABCDEFGHIJ012345",
        "ghp_" + "a1B2" * 9, "xoxb-1234567890-abc",
        "eyJhbGciOiJIUzI1.eyJzdWIiOiIx.c2lnbmF0dXJlMTIz",
        "https://user:hunter2@db.example.com/x", "https://hooks.slack.com/services/T0/B0/x",
        "Authorization: Bearer abcdefgh12345678", "--password hunter2", "--api-key=k3y",
        "DB_PASSWORD=x1", "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI", "API_KEY: abc", "MY_KEY=v",
        "mysql -uroot -phunter2", "curl -u deploy:hunter2", '{"password": "hunter2"}',
        "X-Api-Key: k3yk3y", "Cookie: sid=abc123", "docker login -p hunter2",
        "sshpass -p hunter2", "redis-cli -a hunter2", "curl -u ann@x.io:'hunter2'",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
        "aB3" * 13 + "x", "token ", "secret", "key", "Key", "basic", "arn:aws:s3:::dev-bulk/logs/",
        "waits for a human's approval", "(approval 0190a7f0e1b2c3d4e5f60718293a4b5c)", ":", "=",
        " ", "\n", "-", "/", "'", '"', "s3:DeleteObject", "the tests pass", "0001.txt",
    ]  # fmt: skip
    for _ in range(5_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 12)))
        assert redact_text(text) == _redact_scan(text), text
    for secret in pieces[:26]:
        assert redact_text(f"see {secret} here") != f"see {secret} here", secret


def test_names_the_scan_folds_to_a_keyword_are_not_let_past_it() -> None:
    """``re`` matches the long s as ``s``, the dotless and the dotted capital I as ``i``:
    the substring pre-check must see the keyword in them too, or the value is kept."""
    long_s, dotless_i, dotted_i, kelvin = "\u017f", "\u0131", "\u0130", "\u212a"
    for name in (
        f"PA{long_s}SWORD", f"pa{long_s}{long_s}word", f"ap{dotted_i}_key",
        f"ap{dotless_i}_key", "SECRET_TOKEN", f"to{kelvin}en",
    ):  # fmt: skip
        text = f"{name}=hunter2 ./run"
        assert redact_text(text) == _redact_scan(text) != text, text
        assert "hunter2" not in redact_text(f"echo {text}"), text


@pytest.mark.parametrize(
    "text",
    [
        # every cookie of a header, not only the first
        "Cookie: theme=dark; sid=hunter2",
        "curl -H 'Cookie: a=1; sid=hunter2' https://x",
        'curl -H "set-cookie: sid=hunter2; Path=/" https://x',
        'curl --cookie "a=1; sid=hunter2" https://x',
        # an escaped quote does not end a quoted value; a password attached to its flag
        '{"password": "x\\"hunter2", "user": "ann"}',
        '--password "x\\"hunter2" --user ann',
        'curl -u ann:"x\\"hunter2" https://x',
        "sshpass -phunter2 ssh host",
        "docker login -u ci -phunter2 registry",
    ],
)
def test_the_whole_secret_is_blanked_not_its_first_part(text: str) -> None:
    assert "hunter2" not in redact_text(text), redact_text(text)


def test_a_shell_value_ended_by_its_backslash_and_prose_about_cookies() -> None:
    assert redact_text("PASSWORD='x\\' ./run") == "PASSWORD=[redacted] ./run"
    assert redact_text("a cookie jar") == "a cookie jar"
