"""Admin API models for Slack interactivity."""

from __future__ import annotations

from pydantic import BaseModel, Field

from tether.admin.schemas import Strict

__all__ = ["SigningSecretOut", "SigningSecretSet", "SlackUserMap", "SlackUserOut"]

SLACK_ID = r"^[A-Z0-9]{2,32}$"


class SigningSecretSet(Strict):
    secret: str = Field(
        min_length=16,
        max_length=256,
        pattern=r"^\S+$",
        description="the Slack app's signing secret (Basic Information → App Credentials); "
        "stored sealed, never shown again",
    )


class SigningSecretOut(BaseModel):
    set: bool = Field(description="whether a signing secret is stored (it is never shown)")
    updated_at: str | None
    updated_by: str | None


class SlackUserMap(Strict):
    team_id: str = Field(pattern=SLACK_ID, description="the Slack workspace id (T…)")
    user_id: str = Field(pattern=SLACK_ID, description="the Slack user id (U… or W…)")
    operator: str = Field(
        min_length=1,
        max_length=64,
        description="the admin token (by name) this Slack user decides as; it must be a "
        "live token with the admin role",
    )


class SlackUserOut(BaseModel):
    id: str
    project: str
    team_id: str
    user_id: str
    operator: str
    created_at: str | None
    created_by: str
