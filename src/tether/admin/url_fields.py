"""URLs the admin API stores and later dials: printable ASCII that ``urlsplit`` accepts.

The pattern keeps the OpenAPI document honest (what it admits, tether accepts); the
validator catches what a pattern cannot (``http://[``, a port out of range), so a bad URL
is a 400 that names the field rather than an internal error when it is first used."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

__all__ = ["HttpUrlText", "http_url_checked"]

HTTP_URL_PATTERN = r"^https?://[!-Z^-~]+$"


def http_url_checked(url: str) -> str:
    """The URL as given, once it splits into a scheme, a host and a valid port."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # urlsplit defers port errors to the first read
    except ValueError as exc:
        raise ValueError(f"not a usable URL ({exc})") from None
    if not parts.hostname:
        raise ValueError("the URL names no host")
    return url


HttpUrlText = Annotated[str, Field(pattern=HTTP_URL_PATTERN), AfterValidator(http_url_checked)]
