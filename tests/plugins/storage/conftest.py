"""Shared fixtures of the SQLite backend's tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from navigator_plugins.storage.sqlite import create
from navigator_plugins.storage.sqlite.backend import SQLiteBackend


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[SQLiteBackend]:
    """A migrated SQLite backend on a file of this test's own."""
    store = create({"path": str(tmp_path / "navigator.db")})
    store.migrate()
    assert isinstance(store, SQLiteBackend)
    yield store
    store.close()
