"""Pausing the cyclic garbage collector around hot loops that allocate and keep many objects.

Decoding a page or applying a 150,000-object state creates objects that all stay
alive, so every collection the allocations trigger scans them and frees nothing
(measured: about a quarter of an ingest). Reference counting still frees what
dies; the collector runs again, once, when the last pause ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """No automatic collections inside; nestable and shared by threads (the outermost pause restores)."""
    global _depth, _was_enabled
    with _lock:
        if _depth == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _was_enabled:
                gc.enable()
