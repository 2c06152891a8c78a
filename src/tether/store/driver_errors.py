"""What the PostgreSQL driver raises when the database cannot be reached or the
connection broke: every store path maps these to ``StoreUnavailable`` (503, fail
closed) instead of letting them surface as 500s with tracebacks."""

from __future__ import annotations

import asyncpg

__all__ = ["CONNECTION_ERRORS"]

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    TimeoutError,
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)
