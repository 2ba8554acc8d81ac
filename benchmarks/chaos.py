"""The chaos run: rounds of faults against real processes, each judged by the invariant.

For every scenario (see ``navigator.testing.chaos``: the manager or an edge
killed, a frozen manager, the edge-manager and edge-API networks cut,
blackholed, slowed or dripping, the API failing with 500, 429, 403, 503,
latency, lists dropped halfway, 410 Gone or silent watches, the manager's disk
full, its database connections killed, one of two managers frozen or killed,
and a reconnect storm of many edges) and
every round: the cluster changes through its API while the fault hits, then the
run waits until the manager's copy equals the API server's list (no lost, no
phantom object, no resourceVersion going backwards). Prints rounds, rounds held
and the time to reconverge (p50, max) per scenario, with the machine's load.
Scenarios that do not apply to the backend are left out (``disk_full`` is
SQLite's, ``storage_kill`` and ``manager_failover`` PostgreSQL's);
``reconnect_storm`` runs in a world of its own with ``--storm-edges`` edges,
``manager_failover`` in one with two managers.

    .venv/bin/python benchmarks/chaos.py [--rounds 50] [--scenario NAME ...] [--backend sqlite|postgres]
        [--pods 200] [--rate 20] [--storm-edges 50] [--storm-pods 60]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from navigator.testing.chaos import (
    SCENARIOS,
    Invariant,
    ScenarioResult,
    World,
    applicable,
    run_scenario,
    table,
)

STORM = "reconnect_storm"
FAILOVER = "manager_failover"


def storage(backend: str, tmp: Path, stack: contextlib.ExitStack) -> tuple[dict[str, Any], Callable[[], int] | None]:
    """The manager's storage section, and for PostgreSQL what ends its connections."""
    if backend == "sqlite":
        return {"plugin": "sqlite", "options": {"path": str(tmp / "nav.db")}}, None
    import psycopg
    from navigator_plugin_postgres.testing import postgres_dsn
    from psycopg.conninfo import make_conninfo

    dsn = stack.enter_context(postgres_dsn("navigator_chaos"))  # a fresh database, dropped at the end
    name = f"navigator-chaos-{secrets.token_hex(4)}"  # finds the manager's connections, and only them

    def kill() -> int:
        with psycopg.connect(dsn, autocommit=True) as admin:
            query = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s"
            return len(admin.execute(query, (name,)).fetchall())

    return {"plugin": "postgres", "options": {"dsn": make_conninfo(dsn, application_name=name)}}, kill


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", "5")))
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all that apply")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="API changes per second during a fault")
    parser.add_argument("--storm-edges", type=int, default=50, help="edges (one cluster each) in the storm")
    parser.add_argument("--storm-pods", type=int, default=60, help="pods of the storm's cluster")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a round may take to reconverge")
    args = parser.parse_args(argv)
    names = args.scenario or list(SCENARIOS)
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs); backend {args.backend}", flush=True)
    results: list[ScenarioResult] = []
    started = time.monotonic()

    def run(world: World, wanted: list[str]) -> None:
        invariant = Invariant()
        for name in applicable(world, wanted):
            results.append(
                run_scenario(
                    world, name, args.rounds, rate=args.rate, invariant=invariant, timeout=args.timeout,
                    progress=lambda line: print(line, flush=True),
                )
            )  # fmt: skip

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="navigator-chaos-")))
        (tmp / "one").mkdir()
        (tmp / "storm").mkdir()
        section, killer = storage(args.backend, tmp, stack)
        single = [name for name in names if name not in (STORM, FAILOVER)]
        if single:
            with World(tmp / "one", storage=section, pods=args.pods, storage_killer=killer) as world:
                run(world, single)
        if FAILOVER in names and args.backend != "sqlite":
            two_section, _ = storage(args.backend, tmp, stack)
            (tmp / "two").mkdir()
            with World(tmp / "two", storage=two_section, pods=args.pods, managers=2) as world:
                run(world, [FAILOVER])
        if STORM in names:
            storm_section, _ = storage(args.backend, tmp, stack)
            if args.backend == "sqlite":
                storm_section = {"plugin": "sqlite", "options": {"path": str(tmp / "storm.db")}}
            with World(
                tmp / "storm", storage=storm_section, pods=args.storm_pods, services=4,
                edges=args.storm_edges, api_proxy=False,
            ) as world:  # fmt: skip
                print(f"{args.storm_edges} edges started; load average {os.getloadavg()[0]:.2f}", flush=True)
                run(world, [STORM])
    print()
    print(table(results))
    print(f"\n{time.monotonic() - started:.0f} s; load average at the end: {os.getloadavg()[0]:.2f}")
    failed = [f for r in results for f in (f"{r.name} {x}" for x in r.failures)]
    for failure in failed:
        print(f"FAILED {failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
