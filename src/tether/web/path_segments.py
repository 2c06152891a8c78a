"""A path parameter a door puts into an upstream URL, checked first: aiohttp hands a
segment back decoded, so ``%2F`` in it is a slash and ``%2E%2E`` a dot segment, and the
URL upstream is then resolved to another endpoint than the one the call was decided on
(a file read that fetches a batch's results, a model call that reaches another model)."""

from __future__ import annotations

import re

from aiohttp import web

from tether.errors import BadRequest

__all__ = ["path_segment"]

_SEGMENT = re.compile(r"[A-Za-z0-9_@:~-][A-Za-z0-9._@:~-]*")
"""Ids as upstream gives them (``file_…``, ``msgbatch_…``, ``claude-…@20251001:rawPredict``):
no slash, no percent sign, and not starting with a dot."""


def path_segment(request: web.Request, name: str) -> str:
    """``request.match_info[name]``, refused with 400 unless it is one plain segment."""
    value = request.match_info[name]
    if _SEGMENT.fullmatch(value) is None:
        raise BadRequest(
            f"the path's {name} {value[:80]!r} is not a plain id: letters, digits and "
            "_ @ : ~ - . only, not starting with a dot (an encoded slash or dot segment "
            "would reach another endpoint upstream)"
        )
    return value
