"""Cluster claims shared by several managers: two registries on one database are two managers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.claims import PostgresClaims
from navigator_plugin_postgres.options import parse_options
from navigator_plugin_postgres.testing import fresh_schema

from navigator.interfaces import Claim, ClaimOutcome
from navigator.testing.storage_conformance import check_claim_rules

FAST_LEASES = {"lease_ttl": 1.0, "heartbeat_interval": 0.2}


@pytest.fixture
def options(pg_options: dict[str, Any]) -> dict[str, Any]:
    return {**pg_options, **FAST_LEASES}


@pytest.fixture
def managers(options: dict[str, Any]) -> Iterator[Callable[[str, float], PostgresClaims]]:
    """``make(manager_id, grace_period)``: a manager's claims on the shared database."""
    backend = PostgresBackend(parse_options(options))
    backend.migrate()
    made: list[PostgresClaims] = []

    def make(manager_id: str, grace_period: float = 30.0) -> PostgresClaims:
        made.append(backend.create_claims(manager_id, grace_period))
        return made[-1]

    yield make
    for claims in made:
        claims.close()
    backend.close()


def test_the_claim_rules_hold_for_each_manager(managers: Callable[[str, float], PostgresClaims]) -> None:
    check_claim_rules(lambda grace: managers(f"mgr-{time.monotonic_ns()}", grace))


def test_a_second_edge_is_rejected_whichever_manager_it_reaches(
    managers: Callable[[str, float], PostgresClaims],
) -> None:
    a, b = managers("mgr-a", 30.0), managers("mgr-b", 30.0)
    assert a.claim("east", "edge-1").accepted
    for claims in (a, b):
        refused = claims.claim("east", "edge-2")
        assert (refused.outcome, refused.holder_edge_id) == (ClaimOutcome.ALREADY_HELD, "edge-1")
    # Every manager reports the same holder, connected, served by mgr-a.
    seen = [(h.edge_id, h.manager_id, h.connected) for h in (a.holdings()["east"], b.holdings()["east"])]
    assert seen == [("edge-1", "mgr-a", True)] * 2


def test_an_edge_may_move_to_another_manager_and_the_old_one_lets_go(
    managers: Callable[[str, float], PostgresClaims],
) -> None:
    a, b = managers("mgr-a", 30.0), managers("mgr-b", 30.0)
    assert a.claim("east", "edge-1").accepted
    assert b.claim("east", "edge-1").accepted  # the edge reconnected through a load balancer
    assert not a.renew("east", "edge-1")  # mgr-a must end its stale stream
    assert b.renew("east", "edge-1")
    a.release("east", "edge-1")  # mgr-a's stream ending must not release mgr-b's claim
    holding = b.holdings()["east"]
    assert (holding.manager_id, holding.connected) == ("mgr-b", True)


def test_renew_many_renews_in_one_statement_and_names_what_was_lost(
    managers: Callable[[str, float], PostgresClaims],
) -> None:
    a, b = managers("mgr-a", 30.0), managers("mgr-b", 30.0)
    for n in range(50):
        assert a.claim(f"c-{n}", f"edge-{n}").accepted
    assert b.claim("c-7", "edge-7").accepted  # c-7's edge moved to mgr-b
    a.release("c-9", "edge-9")
    held = [(f"c-{n}", f"edge-{n}") for n in range(50)] + [("c-1", "edge-other"), ("nowhere", "edge-x")]
    assert a.renew_many(held) == {(f"c-{n}", f"edge-{n}") for n in range(50) if n not in (7, 9)}
    assert a.renew_many([]) == set()
    # Exactly what renew() of each says.
    assert [a.renew(c, e) for c, e in held] == [c not in ("c-7", "c-9") and e == f"edge-{c[2:]}" for c, e in held]
    # A renewal keeps leases alive with no heartbeat; mgr-b still sees them held.
    assert b.claim("c-3", "edge-other").outcome is ClaimOutcome.ALREADY_HELD


def test_renew_many_survives_a_dropped_database_connection(
    managers: Callable[[str, float], PostgresClaims], pg_dsn: str
) -> None:
    a = managers("mgr-a", 30.0)
    assert a.claim("east", "edge-1").accepted
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'navigator-manager'"
        )
    assert a.renew_many([("east", "edge-1")]) == {("east", "edge-1")}


def test_after_a_release_another_manager_waits_out_the_grace_period(
    managers: Callable[[str, float], PostgresClaims],
) -> None:
    a, b = managers("mgr-a", 0.5), managers("mgr-b", 0.5)
    assert a.claim("east", "edge-1").accepted
    a.release("east", "edge-1")
    waiting = b.claim("east", "edge-2")
    assert waiting.outcome is ClaimOutcome.GRACE_PERIOD
    assert waiting.holder_edge_id == "edge-1" and 0 < waiting.retry_after <= 0.5
    time.sleep(waiting.retry_after + 0.05)
    assert b.claim("east", "edge-2").accepted
    assert b.holdings()["east"].manager_id == "mgr-b"


def test_a_graceful_shutdown_releases_the_managers_claims(
    managers: Callable[[str, float], PostgresClaims],
) -> None:
    a, b = managers("mgr-a", 30.0), managers("mgr-b", 30.0)
    assert a.claim("east", "edge-1").accepted and a.claim("west", "edge-9").accepted
    a.close()
    holdings = b.holdings()
    assert not holdings["east"].connected and not holdings["west"].connected
    assert holdings["east"].released_at is not None
    assert b.claim("east", "edge-2").outcome is ClaimOutcome.GRACE_PERIOD
    assert b.claim("east", "edge-1").accepted


def test_the_heartbeat_keeps_a_quiet_claim_alive(managers: Callable[[str, float], PostgresClaims]) -> None:
    a, b = managers("mgr-a", 30.0), managers("mgr-b", 30.0)
    assert a.claim("east", "edge-1").accepted
    time.sleep(FAST_LEASES["lease_ttl"] * 2)  # no renew() calls: only the heartbeat
    assert b.claim("east", "edge-2").outcome is ClaimOutcome.ALREADY_HELD


def test_simultaneous_claims_have_one_winner(managers: Callable[[str, float], PostgresClaims]) -> None:
    registries = [managers("mgr-a", 30.0), managers("mgr-b", 30.0)]
    start = threading.Barrier(8)
    outcomes: list[Claim] = []

    def claim(i: int) -> None:
        start.wait()
        outcomes.append(registries[i % 2].claim("contested", f"edge-{i}"))

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(o.outcome for o in outcomes) == [ClaimOutcome.ACCEPTED] + [ClaimOutcome.ALREADY_HELD] * 7
    winner = registries[0].holdings()["contested"].edge_id
    assert {o.holder_edge_id for o in outcomes if not o.accepted} == {winner}


def test_a_claim_survives_a_dropped_database_connection(
    managers: Callable[[str, float], PostgresClaims], pg_dsn: str
) -> None:
    a = managers("mgr-a", 30.0)
    assert a.claim("east", "edge-1").accepted
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = 'navigator-manager'"
        )
    assert a.renew("east", "edge-1")


#: A manager that claims a cluster and then hangs until killed: no release, no goodbye.
DOOMED_MANAGER = """
import json, sys, time
from navigator_plugin_postgres.plugin import create
claims = create(json.loads(sys.argv[1])).create_claims(sys.argv[2], 30.0)
assert claims.claim("east", "edge-1").accepted
print("claimed", flush=True)
time.sleep(600)
"""


def kill_after_claiming(options: dict[str, Any], manager_id: str) -> None:
    """Run a manager that claims ``east`` for ``edge-1`` in another process, then SIGKILL it."""
    doomed = subprocess.Popen(
        [sys.executable, "-c", DOOMED_MANAGER, json.dumps(options), manager_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert doomed.stdout is not None and doomed.stdout.readline().strip() == "claimed", doomed.stderr
    finally:
        doomed.kill()
        doomed.wait()


def test_when_a_manager_dies_its_leases_expire_then_the_grace_period_runs(
    managers: Callable[[str, float], PostgresClaims], options: dict[str, Any]
) -> None:
    survivor = managers("mgr-b", 1.0)
    kill_after_claiming(options, "doomed-manager")
    assert survivor.holdings()["east"].manager_id == "doomed-manager"
    seen: list[ClaimOutcome] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        claim = survivor.claim("east", "edge-2")
        if not seen or seen[-1] is not claim.outcome:
            seen.append(claim.outcome)
        if claim.outcome is ClaimOutcome.GRACE_PERIOD:
            assert 0 < claim.retry_after <= 1.0
            holding = survivor.holdings()["east"]
            assert not holding.connected and holding.released_at is not None
        if claim.accepted:
            break
        time.sleep(0.05)
    assert seen == [ClaimOutcome.ALREADY_HELD, ClaimOutcome.GRACE_PERIOD, ClaimOutcome.ACCEPTED]
    assert survivor.holdings()["east"].manager_id == "mgr-b"


def test_an_unused_registry_can_be_closed(options: dict[str, Any]) -> None:
    backend = PostgresBackend(parse_options({**options, "schema": fresh_schema()}))
    try:
        claims = backend.create_claims("probe", 1.0)
        claims.close()
        claims.close()
    finally:
        backend.close()


def test_a_manager_restarted_under_the_same_id_lets_go_of_its_old_claims(
    pg_options: dict[str, Any], managers: Callable[[str, float], PostgresClaims]
) -> None:
    # manager_id fixed in the YAML: the new process must not keep the dead one's claims alive.
    kill_after_claiming({**pg_options, "lease_ttl": 60, "heartbeat_interval": 0.2}, "mgr-fixed")
    observer = managers("observer", 30.0)
    assert observer.holdings()["east"].connected
    restarted = managers("mgr-fixed", 30.0)
    assert restarted.claim("west", "edge-7").accepted  # in use: its heartbeat runs
    deadline = time.monotonic() + 120
    while observer.holdings()["east"].connected:
        assert time.monotonic() < deadline, "the old claim was never released"
        time.sleep(0.05)
    assert observer.holdings()["west"].connected
    assert observer.claim("east", "edge-1").accepted
