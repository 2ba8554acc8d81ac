"""Rows inserted many per statement land as ``executemany`` would put them: all, in order, counted alike."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from navigator_plugins.storage.sqlite import bulk

HEAD = "INSERT INTO t (k, v, n)"
UPSERT_TAIL = "ON CONFLICT (k) DO UPDATE SET v = excluded.v, n = excluded.n WHERE excluded.n > t.n"


def table(path: Path, limit: int | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE NOT NULL, v BLOB, n INTEGER)")
    if limit is not None:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, limit)
    return conn


@pytest.mark.parametrize("count", [0, 1, 2, 7, 64, 1000, 5001])
@pytest.mark.parametrize("limit", [None, 3, 50])
def test_every_row_goes_in_in_order(tmp_path: Path, count: int, limit: int | None) -> None:
    """Ids follow the rows' order (the label index numbers rows before they go in), whatever the
    number of rows and however few parameters the connection allows per statement."""
    conn = table(tmp_path / "t.db", limit)
    rows = [(f"key-{i:05d}", f"value {i}".encode(), i) for i in range(count)]
    assert bulk.insert(conn, HEAD, rows) == count
    stored = conn.execute("SELECT id, k, v, n FROM t ORDER BY id").fetchall()
    assert stored == [(i + 1, *row) for i, row in enumerate(rows)]


def test_counts_changes_as_executemany_does(tmp_path: Path) -> None:
    """An upsert's count leaves out rows its condition kept (the SQLite backend reads stale writes from it)."""
    ours, theirs = table(tmp_path / "ours.db"), table(tmp_path / "theirs.db")
    first = [(f"k{i}", b"old", 10) for i in range(300)]
    again = [(f"k{i}", b"new", 5 if i % 3 else 20) for i in range(0, 600, 2)]
    for conn in (ours, theirs):
        conn.executemany("INSERT INTO t (k, v, n) VALUES (?, ?, ?)", first)
    counted = bulk.insert(ours, HEAD, again, UPSERT_TAIL)
    expected = theirs.executemany(f"{HEAD} VALUES (?, ?, ?) {UPSERT_TAIL}", again).rowcount
    assert counted == expected == 50 + 150  # of 150 held keys 50 updated (n grew), 150 new keys
    assert ours.execute("SELECT k, v, n FROM t ORDER BY k").fetchall() == theirs.execute(
        "SELECT k, v, n FROM t ORDER BY k"
    ).fetchall()


def test_a_key_twice_fails_the_insert(tmp_path: Path) -> None:
    """The backend rolls back and writes the state another way (the last copy of the key wins), so
    the error must reach it, whichever statement the second copy falls in."""
    conn = table(tmp_path / "t.db")
    for rows in ([("a", b"", 1), ("a", b"", 2)], [("a", b"", 1), ("b", b"", 1), ("a", b"", 2)]):
        conn.execute("DELETE FROM t")
        with pytest.raises(sqlite3.IntegrityError):
            bulk.insert(conn, HEAD, rows)
