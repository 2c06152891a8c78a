"""Signed anchors: the chain head (``seq``, ``hash``) at a moment, signed with tether's
Ed25519 audit key. Whoever holds anchors can later prove that the trail up to each one is
what it was then, even against someone who rewrote the events *and* recomputed every hash
(they cannot sign without the key, which is sealed with the master key)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tether.audit.chain import ChainHead
from tether.errors import BadRequest

__all__ = ["ANCHOR_PREFIX", "Anchor", "key_id", "public_key_text", "sign_anchor"]

ANCHOR_PREFIX = "anchors/"
VERSION = "tether-audit-anchor/1"


def public_key_text(key: Ed25519PublicKey) -> str:
    return base64.b64encode(key.public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def key_id(public_key: str) -> str:
    """A short name for a public key (anchors carry it, so a key change is visible)."""
    return hashlib.sha256(public_key.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Anchor:
    seq: int
    hash: str
    ts: int
    key_id: str
    signature: str
    reason: str = "scheduled"
    """``scheduled`` (kept every TETHER_AUDIT_ANCHOR_EVERY) or ``prune`` (the last event
    removed by a prune: the first kept event's ``prev_hash``)."""

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.seq, self.hash)

    @property
    def name(self) -> str:
        """Where it is stored under a destination: by date, then by event number."""
        day = datetime.fromtimestamp(self.ts / 1000, UTC).strftime("%Y/%m/%d")
        return f"{ANCHOR_PREFIX}{day}/{self.seq:012d}-{self.ts}.json"

    def signed_bytes(self) -> bytes:
        return f"{VERSION}\n{self.seq}\n{self.hash}\n{self.ts}\n{self.reason}".encode()

    def to_json(self) -> bytes:
        return orjson.dumps({"version": VERSION, **asdict(self)})

    @classmethod
    def from_json(cls, raw: bytes, origin: str) -> Anchor:
        try:
            data = orjson.loads(raw)
            return cls(
                seq=int(data["seq"]),
                hash=str(data["hash"]),
                ts=int(data["ts"]),
                key_id=str(data["key_id"]),
                signature=str(data["signature"]),
                reason=str(data.get("reason", "scheduled")),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise BadRequest(f"{origin} is not a tether audit anchor") from None

    def verifies_with(self, public_key: str) -> bool:
        try:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
            key.verify(base64.b64decode(self.signature), self.signed_bytes())
        except (InvalidSignature, ValueError):
            return False
        return True


def sign_anchor(
    private_key: Ed25519PrivateKey, head: ChainHead, ts: int, reason: str = "scheduled"
) -> Anchor:
    unsigned = Anchor(
        head.seq, head.hash, ts, key_id(public_key_text(private_key.public_key())), "", reason
    )
    signature = base64.b64encode(private_key.sign(unsigned.signed_bytes())).decode()
    return Anchor(unsigned.seq, unsigned.hash, ts, unsigned.key_id, signature, reason)
