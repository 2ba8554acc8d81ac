"""A real, throwaway PostgreSQL database for tests (this plugin's and anyone else's).

``postgres_dsn()`` creates a fresh, uniquely named database and drops it
afterwards. The server comes from ``NAVIGATOR_TEST_POSTGRES_DSN`` when set (CI
runs PostgreSQL next to the tests), otherwise from the ``pgserver`` package,
which downloads nothing: it ships PostgreSQL binaries and runs them from a
temporary directory (as an unprivileged ``pgserver`` user when run as root).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

#: An administrative DSN (may create databases) of a server to run tests against.
DSN_ENV = "NAVIGATOR_TEST_POSTGRES_DSN"


class PostgresUnavailable(RuntimeError):
    """Neither ``NAVIGATOR_TEST_POSTGRES_DSN`` nor ``pgserver`` gave a server; the message says why."""


def _usable(dsn: str) -> str | None:
    """``None`` when a connection works, else the reason it does not."""
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


@contextmanager
def _pgserver() -> Iterator[str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs complains about XDG_RUNTIME_DIR
            import pgserver
    except ImportError as exc:
        raise PostgresUnavailable(f"the pgserver package is not installed ({exc})") from None
    root: Path | None = None
    try:
        root = Path(tempfile.mkdtemp(prefix="navigator-pg-"))
        server = pgserver.get_server(root / "data", cleanup_mode="delete")
    except Exception as exc:  # pgserver raises plain exceptions of many kinds
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)
        raise PostgresUnavailable(f"pgserver could not start PostgreSQL: {type(exc).__name__}: {exc}") from None
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """An administrative DSN: ``NAVIGATOR_TEST_POSTGRES_DSN`` if it answers, else a ``pgserver`` server."""
    reasons = []
    env = os.environ.get(DSN_ENV)
    if env:
        problem = _usable(env)
        if problem is None:
            yield env
            return
        reasons.append(f"{DSN_ENV} does not answer: {problem}")
    with ExitStack() as stack:
        try:
            dsn = stack.enter_context(_pgserver())
        except PostgresUnavailable as exc:
            reasons.append(str(exc))
            raise PostgresUnavailable("; ".join(reasons)) from None
        yield dsn


def create_database(admin_dsn: str, prefix: str = "navigator_test") -> str:
    """A new empty database on the server of ``admin_dsn``; returns its DSN."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(admin_dsn, dbname=name)


def drop_database(admin_dsn: str, dsn: str) -> None:
    """Drop a database made by ``create_database``, disconnecting whoever still uses it."""
    name = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name))))


@contextmanager
def postgres_dsn(prefix: str = "navigator_test") -> Iterator[str]:
    """A DSN for a fresh database that is dropped on exit; raises ``PostgresUnavailable``."""
    with postgres_server() as admin:
        dsn = create_database(admin, prefix)
        try:
            yield dsn
        finally:
            drop_database(admin, dsn)


def fresh_schema(prefix: str = "t") -> str:
    """A unique schema name: tests share one database and isolate themselves by schema."""
    return f"{prefix}_{secrets.token_hex(6)}"
