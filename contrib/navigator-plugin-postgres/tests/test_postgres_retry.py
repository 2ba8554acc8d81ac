"""Retrying a transaction on a fresh connection: how often, how long between tries, when not at all.

Connections are really lost (the server terminates the backend running the work);
the waits between tries are recorded instead of slept and the jitter comes from a
seeded ``random.Random``, so the pacing is checked without timing anything.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from navigator_plugin_postgres import retry
from navigator_plugin_postgres.connection import open_pool
from navigator_plugin_postgres.options import PostgresOptions, parse_options
from psycopg_pool import ConnectionPool

from navigator.plugin import BackoffPolicy, StorageError


class Sleeps:
    """Records the waits between tries instead of sleeping them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


class FlakyWork:
    """Work whose connection the server terminates on the first ``failures`` tries; then it answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.tries = 0
        self.backends: list[int] = []

    def __call__(self, conn: psycopg.Connection[Any]) -> int:
        self.tries += 1
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        self.backends.append(row[0])
        if self.tries <= self.failures:
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")  # raises: the connection is gone
        return 42


def options_for(pg_options: dict[str, Any], **overrides: Any) -> PostgresOptions:
    return parse_options({**pg_options, "pool_min_size": 1, "pool_max_size": 1, **overrides})


@pytest.fixture
def pool(pg_options: dict[str, Any]) -> Iterator[ConnectionPool]:
    p = open_pool(options_for(pg_options))
    yield p
    p.close()


def test_retry_pacing_comes_from_the_options() -> None:
    options = PostgresOptions(dsn="host=x", retry_initial_backoff="250ms", retry_max_backoff="3s")
    assert options.retry_backoff == BackoffPolicy(initial=0.25, max=3.0, multiplier=2.0, jitter=0.2)
    defaults = PostgresOptions(dsn="host=x").retry_backoff
    assert (defaults.initial, defaults.max, defaults.jitter) == (0.1, 5.0, 0.2)


def test_a_lost_connection_is_retried_on_a_fresh_one_with_growing_jittered_waits(
    pool: ConnectionPool, pg_options: dict[str, Any]
) -> None:
    options = options_for(pg_options, retry_attempts=6, retry_initial_backoff="100ms", retry_max_backoff="1s")
    work, sleeps = FlakyWork(failures=5), Sleeps()
    assert retry.run(pool, options, "counting", work, rng=random.Random(11), sleep=sleeps) == 42
    assert work.tries == 6
    assert len(set(work.backends)) == 6  # every retry ran on a new server connection
    assert len(sleeps.waits) == 5
    for n, wait in enumerate(sleeps.waits):
        base = min(1.0, 0.1 * 2**n)
        assert base * 0.8 <= wait <= min(1.0, base * 1.2), (n, wait)
    assert sleeps.waits[:4] == sorted(sleeps.waits[:4])  # doubling outgrows ±20 %
    assert len({round(w, 9) for w in sleeps.waits}) == 5  # jittered, not in lockstep


def test_the_same_seed_paces_the_same_and_another_seed_differently(
    pool: ConnectionPool, pg_options: dict[str, Any]
) -> None:
    options = options_for(pg_options, retry_attempts=4)

    def waits(seed: int) -> list[float]:
        sleeps = Sleeps()
        retry.run(pool, options, "counting", FlakyWork(failures=3), rng=random.Random(seed), sleep=sleeps)
        return sleeps.waits

    assert waits(5) == waits(5) != waits(6)


def test_gives_up_after_retry_attempts(pool: ConnectionPool, pg_options: dict[str, Any]) -> None:
    options = options_for(pg_options, retry_attempts=3)
    work, sleeps = FlakyWork(failures=10), Sleeps()
    with pytest.raises(StorageError, match="postgres: counting failed after 3 attempts"):
        retry.run(pool, options, "counting", work, sleep=sleeps)
    assert work.tries == 3 and len(sleeps.waits) == 2


def test_an_error_a_retry_cannot_fix_is_not_retried(pool: ConnectionPool, pg_options: dict[str, Any]) -> None:
    sleeps = Sleeps()
    tries: list[int] = []

    def work(conn: psycopg.Connection[Any]) -> None:
        tries.append(1)
        conn.execute("SELECT * FROM no_such_table")

    with pytest.raises(StorageError, match=r"postgres: reading failed: .*no_such_table"):
        retry.run(pool, options_for(pg_options), "reading", work, sleep=sleeps)
    assert len(tries) == 1 and sleeps.waits == []


def test_a_stream_is_retried_until_its_first_row_then_never(pool: ConnectionPool, pg_options: dict[str, Any]) -> None:
    options = options_for(pg_options, retry_attempts=5)
    flaky = FlakyWork(failures=2)

    def rows(conn: psycopg.Connection[Any]) -> Iterator[int]:
        yield flaky(conn)
        yield 43

    sleeps = Sleeps()
    assert list(retry.stream(pool, options, "listing", rows, rng=random.Random(2), sleep=sleeps)) == [42, 43]
    assert flaky.tries == 3 and len(sleeps.waits) == 2
    assert 0.08 <= sleeps.waits[0] <= 0.12 and 0.16 <= sleeps.waits[1] <= 0.24

    def cut_off_after_one(conn: psycopg.Connection[Any]) -> Iterator[int]:
        yield 1
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        yield 2

    sleeps = Sleeps()
    got: list[int] = []
    with pytest.raises(StorageError, match="postgres: listing failed"):
        got.extend(retry.stream(pool, options, "listing", cut_off_after_one, sleep=sleeps))
    assert got == [1] and sleeps.waits == []  # starting over would mix two snapshots
