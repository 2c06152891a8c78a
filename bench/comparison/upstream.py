"""The bundled fake Anthropic API on uvloop, as the upstream every server is measured
against (``python -m tether.fakes.anthropic`` runs it on asyncio's default loop, which
would make the upstream, not the servers, the first limit).

    python bench/comparison/upstream.py --port 9999 --api-key sk-ant-…
"""

from __future__ import annotations

import asyncio

import uvloop

from tether.fakes.anthropic import main

if __name__ == "__main__":
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    main()
