"""Webhook URLs are credentials (a Slack incoming-webhook URL is all it takes to post):
sealed at rest like upstream keys, shown only as scheme and host afterwards."""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["masked_url", "url_context"]


def url_context(webhook_id: str) -> str:
    """What a sealed URL is bound to, so it does not decrypt on another webhook's row."""
    return f"webhook-url:{webhook_id}"


def masked_url(url: str) -> str:
    """``https://hooks.slack.com/…``: enough to tell webhooks apart, nothing to post with."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"
