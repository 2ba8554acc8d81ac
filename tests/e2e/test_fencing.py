"""Fencing with real processes (issue #14, item 2): a frozen manager's states never land after a takeover.

Two `navigator manager` processes on one PostgreSQL schema, a `navigator kubesim` with
churn, edge-1 syncing through manager A. Manager A is frozen (SIGSTOP) while edge-1
keeps sending it changes; the standby edge-2 takes the cluster over through manager B
once A's lease has run out and the grace period passed, and syncs on. Then A resumes
(SIGCONT) with those states in flight: none of them may land, and no stored
resourceVersion may go backwards. Before fencing, A committed them: the stored pods
went back to the versions edge-1 had seen before the freeze.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from navigator.testing.processes import Child, Fleet, free_port, query_ok, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

LEASE_TTL = 2.0


@pytest.fixture(scope="module")
def pg_dsn() -> Iterator[str]:
    """A fresh database on the PostgreSQL the plugin's tests use (they FAIL without one; the
    ``NAVIGATOR_TEST_POSTGRES=skip`` opt-out skips them, except under CI=true)."""
    opt_out = "NAVIGATOR_TEST_POSTGRES"
    if os.environ.get(opt_out, "").strip().lower() == "skip" and os.environ.get("CI", "").lower() != "true":
        pytest.skip(f"PostgreSQL tests skipped on request: {opt_out}=skip is set")
    try:
        from navigator_plugin_postgres.testing import PostgresUnavailable, postgres_dsn
    except ImportError as exc:
        pytest.fail(f"navigator-plugin-postgres is not installed ({exc}): `make venv` installs it", pytrace=False)
    try:
        with postgres_dsn("navigator_e2e_fencing") as dsn:
            yield dsn
    except PostgresUnavailable as exc:
        pytest.fail(f"no PostgreSQL to test against: {exc} ({opt_out}=skip skips these tests)", pytrace=False)


def manager(fleet: Fleet, name: str, port: int, dsn: str, schema: str) -> Child:
    config = fleet.tmp / f"{name}.yaml"
    config.write_text(
        f"listen: 127.0.0.1:{port}\nmanager_id: {name}\ngrace_period: 1s\n"
        f"storage:\n  plugin: postgres\n  options:\n    dsn: '{dsn}'\n    schema: {schema}\n"
        f"    lease_ttl: {LEASE_TTL:g}s\n    heartbeat_interval: 0.5s\n"
    )
    proc = fleet.start(name, "manager", "--config", str(config))
    proc.wait_until(lambda: query_ok(port), f"an answer on port {port}", interval=0.3)
    return proc


def stored(dsn: str, schema: str) -> dict[str, tuple[int, str]]:
    """uid -> (resourceVersion, name) of the pods stored for cluster east, read from the database."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            sql.SQL("SELECT uid, resource_version, name FROM {}.resources WHERE cluster = 'east' AND kind = 'pods'")
            .format(sql.Identifier(schema))
        ).fetchall()
    return {uid: (int(rv), name) for uid, rv, name in rows}


def holder(dsn: str, schema: str) -> tuple[str, str] | None:
    """(edge id, manager id) of the cluster's connected claim."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            sql.SQL("SELECT edge_id, manager_id FROM {}.cluster_claims WHERE cluster = 'east' AND connected")
            .format(sql.Identifier(schema))
        ).fetchone()
    return (row[0], row[1]) if row is not None else None


class Versions:
    """The highest resourceVersion seen stored per uid; any lower one seen later is a regression."""

    def __init__(self) -> None:
        self.highest: dict[str, int] = {}
        self.regressions: list[str] = []

    def look(self, now: dict[str, tuple[int, str]]) -> None:
        for uid, (rv, name) in now.items():
            seen = self.highest.get(uid, 0)
            if rv < seen:
                self.regressions.append(f"pod {name} ({uid}): stored at {rv} after {seen}")
            self.highest[uid] = max(seen, rv)


def test_a_frozen_manager_resumed_after_a_takeover_writes_nothing(fleet: Fleet, pg_dsn: str) -> None:
    schema = f"e2e_fencing_{os.getpid()}"
    _sim, kubeconfig = fleet.kubesim("east", "--pods", "40", "--churn", "50", "--seed", "7")
    port_a, port_b = free_port(), free_port()
    manager_a = manager(fleet, "mgr-a", port_a, pg_dsn, schema)
    manager_b = manager(fleet, "mgr-b", port_b, pg_dsn, schema)
    edge_1 = fleet.edge("edge-1", "east", kubeconfig, port_a, interval="1s", edge_id="edge-1")
    wait_until(lambda: len(stored(pg_dsn, schema)) >= 40, "east synced through mgr-a", edge_1, timeout=60)
    versions = Versions()
    versions.look(stored(pg_dsn, schema))

    os.kill(manager_a.pid, signal.SIGSTOP)  # edge-1 keeps sending it the churn
    try:
        frozen_at = dict(versions.highest)
        edge_2 = fleet.edge("edge-2", "east", kubeconfig, port_b, interval="1s", edge_id="edge-2")
        wait_until(lambda: holder(pg_dsn, schema) == ("edge-2", "mgr-b"), "edge-2 took east over through mgr-b",
                   timeout=60)  # fmt: skip
        # edge-2 syncs on: every pod moves past what edge-1 last stored.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            versions.look(stored(pg_dsn, schema))
            if sum(versions.highest.get(uid, 0) > rv for uid, rv in frozen_at.items()) >= 10:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"edge-2 did not move the pods on through mgr-b\n{manager_b.log_tail()}\n{edge_2.log_tail()}")
    finally:
        os.kill(manager_a.pid, signal.SIGCONT)

    # Manager A resumes with edge-1's states in flight: watch the stored versions for a while.
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        versions.look(stored(pg_dsn, schema))
        time.sleep(0.1)
    assert versions.regressions == [], "\n".join(versions.regressions[:10])
    assert holder(pg_dsn, schema) == ("edge-2", "mgr-b")
    log = manager_a.output()
    assert "lost its claim" in log or "the claim was lost" in log, manager_a.log_tail()
    assert manager_a.alive()
