"""What ``POST /v1/authorize`` takes, and reading it from the body's bytes: pydantic and
orjson only, so the heavy-work lane's worker can read a large body without aiohttp."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from tether.errors import TetherError
from tether.web.json_values import parse_json, validate

__all__ = ["MAX_WAIT_SECONDS", "AuthorizeRequest", "Unread", "read_authorize_request"]

MAX_WAIT_SECONDS = 60


class AuthorizeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str | None = Field(None, min_length=1, max_length=128)
    action: str = Field(min_length=1, max_length=128, examples=["s3:DeleteBucket"])
    resource: str = Field(max_length=4096, examples=["arn:aws:s3:::dev-scratch"])
    tags: dict[str, str] = Field(default_factory=dict, examples=[{"env": "dev"}])
    attributes: dict[str, Any] = Field(default_factory=dict)
    wait_seconds: float = Field(
        0,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="if an approval is needed, wait up to this long for its decision",
    )


@dataclass(frozen=True, slots=True)
class Unread:
    """Why a body could not be read (an error does not cross a process boundary as is)."""

    code: str
    message: str


def read_authorize_request(body: bytes) -> AuthorizeRequest | Unread:
    try:
        return validate(AuthorizeRequest, parse_json(body))
    except TetherError as exc:
        return Unread(exc.code, exc.message)
