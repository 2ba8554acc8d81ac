"""``navigator_plugin_postgres.testing``: what other suites use to get a throwaway database."""

from __future__ import annotations

import psycopg
import pytest
from navigator_plugin_postgres.testing import (
    DSN_ENV,
    PostgresServer,
    PostgresUnavailable,
    describe,
    find_server,
    postgres_dsn,
)


def test_postgres_dsn_gives_a_fresh_database_and_drops_it(
    pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DSN_ENV, pg_server.dsn)  # the session's server, whichever way it was found
    with postgres_dsn("navigator_probe") as dsn:
        with psycopg.connect(dsn) as conn:
            name = conn.execute("SELECT current_database()").fetchone()
            tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert name is not None and name[0].startswith("navigator_probe_") and tables == (0,)
    with psycopg.connect(pg_server.dsn) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name[0]]).fetchone()
    assert left == (0,)


def test_the_dsn_variable_is_used_as_given(pg_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DSN_ENV, pg_server.dsn)
    with find_server() as server:
        assert server.dsn == pg_server.dsn and server.origin == f"from {DSN_ENV}"


def test_a_dsn_variable_that_does_not_work_is_an_error_not_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DSN_ENV, "postgresql://someone:secret@127.0.0.1:1/nowhere")
    expected = f"^{DSN_ENV} \\(someone@127.0.0.1:1/nowhere\\) does not work: "
    with pytest.raises(PostgresUnavailable, match=expected), find_server():
        pass


def test_descriptions_leave_the_password_out() -> None:
    assert describe("postgresql://u:pw@db.example.com:5433/nav") == "u@db.example.com:5433/nav"
    assert describe("host=/tmp/sock dbname=x password=pw") == "/tmp/sock/x"
