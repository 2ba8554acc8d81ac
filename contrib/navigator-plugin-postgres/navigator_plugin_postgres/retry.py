"""Run one transaction against the pool, again on a fresh connection when the connection fails.

A transaction either commits or rolls back entirely, so retrying the whole
unit is safe: a snapshot is applied completely or not at all, never in part.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any, TypeVar

import psycopg
from loguru import logger
from psycopg_pool import ConnectionPool

from navigator.plugin import Backoff, StorageError
from navigator_plugin_postgres.connection import describe_error
from navigator_plugin_postgres.options import PostgresOptions

T = TypeVar("T")


def retryable(exc: psycopg.Error) -> bool:
    """Failures a new connection or a second try can fix: lost connections, server restarts,
    pool exhaustion, serialization failures, deadlocks, a transaction the server ended for
    idling past its limit (its manager was stalled). Not a statement_timeout: it would hit again."""
    if isinstance(exc, psycopg.errors.IdleInTransactionSessionTimeout):
        return True
    return isinstance(exc, psycopg.OperationalError) and not isinstance(exc, psycopg.errors.QueryCanceled)


def run(
    pool: ConnectionPool,
    options: PostgresOptions,
    what: str,
    work: Callable[[psycopg.Connection[Any]], T],
    *,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``work(conn)`` inside one transaction; retry it on connection failures.

    Waits between tries follow ``options.retry_backoff`` (jittered by ``rng``) and are
    spent in ``sleep``.
    """
    backoff = Backoff(options.retry_backoff, rng)
    attempt = 0
    while True:
        try:
            with pool.connection() as conn, conn.transaction():
                return work(conn)
        except psycopg.Error as exc:
            if not retryable(exc):
                raise StorageError(f"postgres: {what} failed: {describe_error(exc)}") from exc
            attempt += 1
            if attempt >= options.retry_attempts:
                raise StorageError(
                    f"postgres: {what} failed after {attempt} attempts: {describe_error(exc)}"
                ) from exc
            wait = backoff.next()
            logger.warning(
                "postgres: {} failed ({}), retrying in {:.2f}s (attempt {}/{})",
                what, describe_error(exc), wait, attempt + 1, options.retry_attempts,
            )  # fmt: skip
            sleep(wait)


def stream(
    pool: ConnectionPool,
    options: PostgresOptions,
    what: str,
    work: Callable[[psycopg.Connection[Any]], Iterator[T]],
    *,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Generator[T, None, None]:
    """Yield what ``work(conn)`` yields inside one transaction (one snapshot of the data).

    Retried only until the first item is out: after that, starting over would
    mix two snapshots, so a failure ends the stream with ``StorageError``.
    Waits between tries are paced as in ``run``.
    """
    backoff = Backoff(options.retry_backoff, rng)
    attempt = 0
    started = False
    while True:
        try:
            with pool.connection() as conn, conn.transaction():
                for item in work(conn):
                    started = True
                    yield item
            return
        except psycopg.Error as exc:
            attempt += 1
            if started or not retryable(exc) or attempt >= options.retry_attempts:
                raise StorageError(f"postgres: {what} failed: {describe_error(exc)}") from exc
            sleep(backoff.next())
