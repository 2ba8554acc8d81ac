"""The chaos run: rounds of faults against real processes, each judged by the invariant.

For every scenario (manager or edge killed with SIGKILL, a frozen manager, the
network cut, blackholed or slowed between edge and manager) and every round: the
cluster changes through its API while the fault hits, then the run waits until
the manager's copy equals the API server's list (no lost, no phantom object, no
resourceVersion going backwards). Prints rounds, rounds held and the time to
reconverge (p50, max) per scenario, with the machine's load.

    .venv/bin/python benchmarks/chaos.py [--rounds 50] [--scenario NAME ...] [--backend sqlite|postgres]
        [--pods 200] [--rate 20]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from navigator.testing.chaos import SCENARIOS, Invariant, World, run_scenario, table


def storage(backend: str, tmp: Path, stack: contextlib.ExitStack) -> dict[str, Any]:
    if backend == "sqlite":
        return {"plugin": "sqlite", "options": {"path": str(tmp / "nav.db")}}
    from navigator_plugin_postgres.testing import postgres_dsn

    dsn = stack.enter_context(postgres_dsn("navigator_chaos"))  # a fresh database, dropped at the end
    return {"plugin": "postgres", "options": {"dsn": dsn}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("ROUNDS", "5")))
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--pods", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="API changes per second during a fault")
    args = parser.parse_args(argv)
    names = args.scenario or list(SCENARIOS)
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs); backend {args.backend}", flush=True)
    results = []
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="navigator-chaos-")))
        with World(tmp, storage=storage(args.backend, tmp, stack), pods=args.pods) as world:
            invariant = Invariant()
            for name in names:
                results.append(
                    run_scenario(world, name, args.rounds, rate=args.rate, invariant=invariant, progress=print)
                )
    print()
    print(table(results))
    print(f"\n{time.monotonic() - started:.0f} s; load average at the end: {os.getloadavg()[0]:.2f}")
    failed = [f for r in results for f in (f"{r.name} {x}" for x in r.failures)]
    for failure in failed:
        print(f"FAILED {failure}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
