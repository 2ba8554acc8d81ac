"""Many rows in few statements: ``INSERT ... VALUES (...), (...), ... [tail]``.

Why not ``executemany``: it binds each row with the GIL held and lets go of it only while
SQLite steps that one row, so a thread inserting beside a busy Python thread waits for the
GIL once per row. Measured here (150,000 pod rows, the ``resources`` table and its indexes):
``executemany`` 0.81 s alone and 479 s beside a thread running Python; these statements of up
to 4,096 rows 0.5-0.6 s alone and 1.2-1.3 s beside it. A first state's rows are inserted from a
thread of their own while the storage thread stages the next chunk (``backend._FirstState``),
which is that case.

Statements hold a power of two of rows, so that any number of rows takes a handful of
statements whose texts repeat (SQLite's per-connection statement cache keeps them compiled),
and at most as many parameters as the connection allows.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Sequence
from typing import Any

#: Rows per statement at most: beyond it, larger statements gained nothing measurable.
MOST_ROWS = 4096

_chain = itertools.chain.from_iterable


@functools.lru_cache(maxsize=128)
def _statement(head: str, tail: str, width: int, count: int) -> str:
    one = "(" + ", ".join(["?"] * width) + ")"
    return f"{head} VALUES {', '.join([one] * count)} {tail}"


def insert(conn: sqlite3.Connection, head: str, rows: Sequence[Sequence[Any]], tail: str = "") -> int:
    """Insert ``rows`` (each as many values as ``head`` names columns; rowids follow their order)
    through ``head VALUES ... tail``; returns how many rows SQLite changed, as ``executemany`` would."""
    if not rows:
        return 0
    width = len(rows[0])
    most = min(MOST_ROWS, max(1, conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // width))
    size = 1 << (most.bit_length() - 1)
    changed, at, left = 0, 0, len(rows)
    while left:
        while size > left:
            size >>= 1
        values = list(_chain(rows[at : at + size]))
        changed += conn.execute(_statement(head, tail, width, size), values).rowcount
        at += size
        left -= size
    return changed
