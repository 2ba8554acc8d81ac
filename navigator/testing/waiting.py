"""Waiting for a condition in an async test: polled, with a ceiling only something stuck reaches."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

#: Seconds a condition may take before the wait gives up.
CEILING = 30.0


async def until(condition: Callable[[], object], what: str, timeout: float = CEILING) -> None:
    """Return once ``condition()`` is true; ``AssertionError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g}s")
        await asyncio.sleep(0.02)
