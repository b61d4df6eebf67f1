"""`python -m commsgw serve` on uvloop instead of asyncio's default loop, to measure whether
uvloop is faster for the gateway (`commsgw._cli` runs the default loop)."""

from __future__ import annotations

import asyncio
import sys

import uvloop

from commsgw._cli import main

if __name__ == "__main__":
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    sys.exit(main(["serve"]))
