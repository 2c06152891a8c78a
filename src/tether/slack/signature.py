"""Slack's request signature: ``v0=HMAC-SHA256(signing secret, "v0:{ts}:{raw body}")`` in
``X-Slack-Signature``, the timestamp in ``X-Slack-Request-Timestamp``; a request older
(or newer) than five minutes is refused, so a captured one is useless after that."""

from __future__ import annotations

import hashlib
import hmac

from tether.errors import AuthenticationFailed

__all__ = ["MAX_AGE_SECONDS", "signature_of", "verify_signature"]

MAX_AGE_SECONDS = 300
VERSION = "v0"


def signature_of(secret: str, timestamp: str, body: bytes) -> str:
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify_signature(
    secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float
) -> None:
    """Raise unless Slack signed exactly this body within the last five minutes."""
    if not timestamp or not signature:
        raise AuthenticationFailed(
            "not signed by Slack: X-Slack-Signature and X-Slack-Request-Timestamp are required",
            code="slack_signature_invalid",
        )
    try:
        sent = int(timestamp)
    except ValueError:
        raise AuthenticationFailed(
            "X-Slack-Request-Timestamp is not a Unix time in seconds",
            code="slack_signature_invalid",
        ) from None
    if abs(now - sent) > MAX_AGE_SECONDS:
        raise AuthenticationFailed(
            f"the Slack request was signed {int(now - sent)} s ago; requests older than "
            f"{MAX_AGE_SECONDS} s are refused (check this host's clock if it is recent)",
            code="slack_request_expired",
        )
    if not hmac.compare_digest(signature_of(secret, timestamp, body), signature):
        raise AuthenticationFailed(
            "the Slack signature does not match this request: is the signing secret set "
            "with `tether slack set-signing-secret` the one of this Slack app?",
            code="slack_signature_invalid",
        )
