"""A real PostgreSQL for this plugin's tests: one fresh database per session, one schema per test.

The server is ``NAVIGATOR_TEST_POSTGRES_DSN`` when set, else the local server on
127.0.0.1:5432, else a throwaway ``pgserver`` (``navigator_plugin_postgres.testing``
has the details). The run prints which one it uses, after "collected N items".
When none works the tests FAIL with the reason: a run never passes by quietly
leaving the database out. ``NAVIGATOR_TEST_POSTGRES=skip`` opts out explicitly
(the tests then skip, naming that variable); ``CI=true`` refuses the opt-out.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.options import parse_options
from navigator_plugin_postgres.testing import (
    DSN_ENV,
    OPT_OUT_ENV,
    PostgresServer,
    PostgresUnavailable,
    create_database,
    drop_database,
    find_server,
    fresh_schema,
)


class _Choice:
    """The server of this run, looked for once (at the end of collection, or by the first test)."""

    def __init__(self) -> None:
        self.stack = ExitStack()
        self.looked = False
        self.server: PostgresServer | None = None
        self.skip: str | None = None  # why the run opted out
        self.problem: str | None = None  # why there is no server

    def resolve(self) -> None:
        if self.looked:
            return
        self.looked = True
        opt_out = os.environ.get(OPT_OUT_ENV, "").strip()
        if opt_out:
            if opt_out.lower() != "skip":
                self.problem = f"{OPT_OUT_ENV}={opt_out!r} is not understood: unset it, or set it to 'skip'"
            elif os.environ.get("CI", "").lower() == "true":
                self.problem = f"{OPT_OUT_ENV}=skip is refused under CI=true: CI must not pass without PostgreSQL"
            else:
                self.skip = f"PostgreSQL tests skipped on request: {OPT_OUT_ENV}=skip is set"
            return
        try:
            self.server = self.stack.enter_context(find_server())
        except PostgresUnavailable as exc:
            self.problem = (
                f"no PostgreSQL to test against: {exc}. Set {DSN_ENV} to a server's DSN (a user that may "
                f"create databases), or {OPT_OUT_ENV}=skip to skip these tests"
            )

    def line(self) -> str:
        if self.server is not None:
            return f"PostgreSQL tests use {self.server}"
        if self.skip is not None:
            return self.skip
        return f"PostgreSQL tests will FAIL: {self.problem}"


_choice = _Choice()


def _needs_postgres(item: pytest.Item) -> bool:
    return "pg_server" in getattr(item, "fixturenames", ())


def pytest_report_collectionfinish(config: pytest.Config, items: list[pytest.Item]) -> list[str]:
    """One line saying which PostgreSQL the run uses (also under -q), when a selected test needs it."""
    if not any(_needs_postgres(item) for item in items):
        return []
    _choice.resolve()
    return [_choice.line()]


def pytest_sessionfinish(session: pytest.Session) -> None:
    _choice.stack.close()  # stops a pgserver this run started


@pytest.fixture(scope="session")
def pg_server() -> PostgresServer:
    _choice.resolve()
    if _choice.skip is not None:
        pytest.skip(_choice.skip)
    if _choice.server is None:
        pytest.fail(str(_choice.problem), pytrace=False)
    return _choice.server


@pytest.fixture(scope="session")
def pg_dsn(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh database on the chosen server for this session, dropped at the end."""
    dsn = create_database(pg_server.dsn, "navigator_test")
    try:
        yield dsn
    finally:
        drop_database(pg_server.dsn, dsn)


@pytest.fixture
def pg_options(pg_dsn: str) -> dict[str, Any]:
    """``storage.options`` for a schema of this test's own."""
    return {"dsn": pg_dsn, "schema": fresh_schema()}


@pytest.fixture
def backend(pg_options: dict[str, Any]) -> Iterator[PostgresBackend]:
    store = PostgresBackend(parse_options(pg_options))
    store.migrate()
    yield store
    store.close()
