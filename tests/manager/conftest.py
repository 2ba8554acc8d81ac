"""A real manager on 127.0.0.1 (gRPC, SQLite in tmp_path), raw protocol clients to poke it, and real stores.

``store_options("sqlite" | "postgres")`` gives the options of a fresh store of
either backend and ``open_store(name, options)`` opens and migrates it the way
the manager does (found by name, created from ``storage.options``). PostgreSQL
is the server the plugin's own tests use (``navigator_plugin_postgres.testing``):
when there is none, or the plugin is not installed, the tests FAIL saying so;
only ``NAVIGATOR_TEST_POSTGRES=skip`` skips them (refused under CI=true).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from navigator.interfaces import StorageBackend
from navigator.plugin_manager import load_plugins, storage_backend
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


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A fresh database for this session on the PostgreSQL the plugin's tests use, dropped at the end."""
    opt_out = "NAVIGATOR_TEST_POSTGRES"  # navigator_plugin_postgres.testing.OPT_OUT_ENV
    if os.environ.get(opt_out, "").strip().lower() == "skip" and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"PostgreSQL tests skipped on request: {opt_out}=skip is set")
    try:
        from navigator_plugin_postgres.testing import PostgresUnavailable, postgres_dsn
    except ImportError as exc:
        pytest.fail(
            f"navigator-plugin-postgres is not installed ({exc}): `make venv` installs it", pytrace=False
        )
    with ExitStack() as stack:
        try:
            dsn = stack.enter_context(postgres_dsn("navigator_manager_test"))
        except PostgresUnavailable as exc:
            pytest.fail(
                f"no PostgreSQL to test against: {exc} ({opt_out}=skip skips these tests)", pytrace=False
            )
        yield dsn


StoreOptions = Callable[[str], dict[str, Any]]


@pytest.fixture
def store_options(request: pytest.FixtureRequest, tmp_path: Path) -> StoreOptions:
    """``storage.options`` for one fresh store of the named backend (each call: another store)."""

    def options(name: str) -> dict[str, Any]:
        if name == "sqlite":
            return {"path": str(tmp_path / f"navigator-{secrets.token_hex(4)}.db")}
        if name == "postgres":
            return {"dsn": request.getfixturevalue("pg_dsn"), "schema": f"t_{secrets.token_hex(6)}"}
        raise ValueError(f"no test store for backend {name!r}")

    return options


@pytest.fixture
def open_store() -> Iterator[Callable[[str, dict[str, Any]], StorageBackend]]:
    """Opens and migrates a backend from its options, as the manager does; closes all at the end."""
    opened: list[StorageBackend] = []

    def open_(name: str, options: dict[str, Any]) -> StorageBackend:
        backend = storage_backend(load_plugins({"storage": [name]}), name).create(options)
        opened.append(backend)
        backend.migrate()
        return backend

    yield open_
    for backend in reversed(opened):
        backend.close()
