"""What a session id may be: it keys a stored row and the audit trail, so it must be
text every backend stores as given (no undecodable bytes, control characters or NUL)."""

from __future__ import annotations

__all__ = ["MAX_SESSION_ID_CHARS", "session_id_problem"]

MAX_SESSION_ID_CHARS = 128


def session_id_problem(session_id: str) -> str | None:
    """Why ``session_id`` cannot be used (a message for the caller), or None."""
    if len(session_id) > MAX_SESSION_ID_CHARS:
        return f"the session id is longer than {MAX_SESSION_ID_CHARS} characters"
    if not session_id.isprintable():
        return (
            "the session id must be printable UTF-8 text (no control characters or "
            "undecodable bytes); a UUID is a good choice"
        )
    return None
