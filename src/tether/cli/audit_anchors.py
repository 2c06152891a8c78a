"""Checking a trail (live, or an archive) against every signed anchor at a destination:
each anchor's signature must verify with tether's public key, and the event it names must
still have the hash it had when it was signed. A trail rewritten and re-hashed from #1 by
someone with database access passes the hash-chain walk but fails here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from tether.audit.anchors import ANCHOR_PREFIX, Anchor
from tether.audit.chain import GENESIS, ChainBreak, ChainHead, ChainReport, ChainWalker
from tether.audit.destinations import Destination
from tether.cli.client import CliError
from tether.errors import TetherError

__all__ = ["AnchorCheck", "check_against_anchors", "load_anchors"]


def load_anchors(dest: Destination, public_key: str) -> tuple[dict[int, Anchor], list[str]]:
    """Anchors by event number, and the names of those whose signature does not verify."""
    anchors: dict[int, Anchor] = {}
    forged: list[str] = []
    for name in dest.names(ANCHOR_PREFIX):
        if not name.endswith(".json"):
            continue
        raw = dest.read(name)
        try:
            anchor = Anchor.from_json(raw or b"", name)
        except TetherError as exc:
            raise CliError(exc.message) from None
        if not anchor.verifies_with(public_key):
            forged.append(name)
            continue
        known = anchors.get(anchor.seq)
        if known is not None and known.hash != anchor.hash:
            forged.append(name)
        anchors[anchor.seq] = anchor
    return anchors, forged


@dataclass
class AnchorCheck:
    report: ChainReport
    anchors: int
    checked: int = 0
    beyond: list[int] = field(default_factory=list)


def check_against_anchors(
    events: Iterable[dict[str, Any]],
    anchors: dict[int, Anchor],
    base: ChainHead,
    head: ChainHead | None,
) -> AnchorCheck:
    """Walk ``events`` from ``base`` (the genesis, or a pruned trail's base, which must
    itself be anchored); ``head``: the live chain's head (None for an archive, which may
    be older than the newest anchors)."""
    walker = ChainWalker(base)
    result = AnchorCheck(walker.report(), len(anchors))
    if base.seq > 0:
        anchor = anchors.get(base.seq)
        if anchor is None or anchor.hash != base.hash:
            walker.refuse(
                ChainBreak(
                    base.seq + 1,
                    "",
                    f"the trail starts after #{base.seq} but no signed anchor holds that "
                    "event's hash: its beginning is not anchored",
                )
            )
        else:
            result.checked += 1
    for event in events:
        if not walker.feed(event):
            break
        anchor = anchors.get(event["seq"])
        if anchor is None:
            continue
        if anchor.hash != event["hash"]:
            walker.refuse(
                ChainBreak(
                    anchor.seq,
                    str(event.get("id", "")),
                    f"event #{anchor.seq} does not have the hash tether signed for it at "
                    f"{anchor.ts} (anchor {anchor.name}): the trail was rewritten",
                )
            )
            break
        result.checked += 1
    if head is not None:
        walker.expect_head(head)
        report = walker.report(base.seq + 1)
        if report.intact:
            result.beyond = sorted(s for s in anchors if s > head.seq)
            if result.beyond:
                walker.refuse(
                    ChainBreak(
                        result.beyond[0],
                        "",
                        f"a signed anchor names event #{result.beyond[0]} but the trail ends "
                        f"at #{head.seq}: its newest events were removed",
                    )
                )
    result.report = walker.report(base.seq + 1, "genesis" if base.hash == GENESIS else "anchor")
    return result


def parsed(lines: Iterable[bytes]) -> Iterable[dict[str, Any]]:
    for line in lines:
        event = orjson.loads(line)
        yield event if isinstance(event, dict) else {"seq": None, "id": "?"}
