"""AES-256-GCM sealing of small secrets, bound to what they belong to."""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tether.errors import TetherError

__all__ = ["SealedBox", "UnsealError"]

NONCE_BYTES = 12


class UnsealError(TetherError):
    code = "credential_unreadable"


class SealedBox:
    """Encrypts with a random nonce; ``context`` (e.g. project id) is authenticated too,
    so a ciphertext copied onto another project's row does not decrypt."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext.encode(), context.encode())

    def unseal(self, sealed: bytes, context: str) -> str:
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], context.encode())
        except InvalidTag:
            raise UnsealError(
                "a stored credential cannot be decrypted: the master key differs from the "
                "one it was stored with"
            ) from None
        return plain.decode()
