"""The canary model: a model route tether answers itself, for readiness drills.

A drill's canary agent calls ``tether-canary`` through the real Messages door — identify,
session, kill switch, guards, policy, budget all decide it — but nothing is forwarded:
the answer is made here, so a drill costs no upstream tokens and needs no credential."""

from __future__ import annotations

from aiohttp import web

from tether.clock import new_id

__all__ = ["CANARY_MODEL", "canary_answer"]

CANARY_MODEL = "tether-canary"


def canary_answer(session_headers: dict[str, str]) -> web.Response:
    return web.json_response(
        {
            "id": f"msg_canary_{new_id()}",
            "type": "message",
            "role": "assistant",
            "model": CANARY_MODEL,
            "content": [{"type": "text", "text": "canary: the door is open"}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        },
        headers=session_headers,
    )
