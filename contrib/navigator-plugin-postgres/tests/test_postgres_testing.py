"""``navigator_plugin_postgres.testing``: what other suites use to get a throwaway database."""

from __future__ import annotations

import psycopg
import pytest
from navigator_plugin_postgres.testing import PostgresUnavailable, postgres_dsn


def test_postgres_dsn_gives_a_fresh_database_and_drops_it(pg_dsn: str) -> None:
    try:
        with postgres_dsn("navigator_probe") as dsn:
            with psycopg.connect(dsn) as conn:
                name = conn.execute("SELECT current_database()").fetchone()
                tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
            assert name is not None and name[0].startswith("navigator_probe_") and tables == (0,)
    except PostgresUnavailable as exc:  # pragma: no cover - the session database came from elsewhere
        pytest.skip(str(exc))
    with psycopg.connect(pg_dsn) as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name[0]]).fetchone()
    assert left == (0,)
