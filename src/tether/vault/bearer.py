"""Bearer secrets (agent keys, admin tokens): generated with high entropy, stored as hashes.

The secrets carry 256 random bits, so a single SHA-256 is a sound, O(1) lookup key;
a slow password hash would only add latency on the hot path.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["ADMIN_TOKEN_PREFIX", "AGENT_KEY_PREFIX", "display_prefix", "generate", "hash_secret"]

AGENT_KEY_PREFIX = "tth_"
ADMIN_TOKEN_PREFIX = "tta_"


def generate(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(secret: str) -> str:
    """The first characters, enough to tell keys apart in listings, too few to use."""
    return secret[:10]
