"""A real manager on 127.0.0.1 (gRPC, SQLite in tmp_path) and raw protocol clients to poke it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdges

TOKENS = {"east": "east-token", "west": "west-token"}


@pytest.fixture
def manager_options() -> dict[str, Any]:
    """Override in a test module to start the manager differently."""
    return {}


@pytest.fixture
async def manager(tmp_path: Path, manager_options: dict[str, Any]) -> AsyncIterator[TestManager]:
    options: dict[str, Any] = {"tokens": TOKENS, "grace_period": 0.5, **manager_options}
    async with run_test_manager(tmp_path, **options) as mgr:
        yield mgr


@pytest.fixture
async def edges(manager: TestManager) -> AsyncIterator[RawEdges]:
    opened = RawEdges(manager.address, TOKENS)
    yield opened
    await opened.close()
