"""A real PostgreSQL for this plugin's tests: one fresh database per session, one schema per test.

``NAVIGATOR_TEST_POSTGRES_DSN`` picks the server (CI); without it a throwaway
``pgserver`` server is started. If neither works the tests skip, except under
``CI=true``, where they fail: CI must never pass by skipping the database.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.options import parse_options
from navigator_plugin_postgres.testing import PostgresUnavailable, fresh_schema, postgres_dsn


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    try:
        with postgres_dsn("navigator_test") as dsn:
            yield dsn
    except PostgresUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
        pytest.skip(f"no PostgreSQL available: {exc}")


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
