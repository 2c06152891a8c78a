"""Admin API bodies for audit anchors and pruning."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from tether.admin.schemas import Strict

__all__ = ["AnchorOut", "LatestAnchorOut", "PruneIn", "PruneOut", "PublicKeyOut"]


class PublicKeyOut(BaseModel):
    public_key: str
    """Base64 of the raw 32-byte Ed25519 public key that signs audit anchors."""
    key_id: str


class AnchorOut(BaseModel):
    version: str
    seq: int
    hash: str
    ts: int
    key_id: str
    signature: str
    reason: str


class PruneIn(Strict):
    before: AwareDatetime = Field(description="Events before this time are removed")
    export_seq: int = Field(ge=1, le=2**63 - 1, description="The last event of the verified export")
    export_hash: str = Field(pattern="^[0-9a-f]{64}$")


class PruneOut(BaseModel):
    pruned_through: int
    """The last event removed (0: nothing was before that time)."""
    base_hash: str
    anchor: AnchorOut | None
    """The signed anchor of the last event removed: the first kept event's prev_hash."""


class LatestAnchorOut(BaseModel):
    kept: bool
    """Whether this tether keeps signed anchors (``TETHER_AUDIT_ANCHOR_DEST``)."""
    anchor: AnchorOut | None
    """The newest signed anchor at that destination (None: none written yet)."""
