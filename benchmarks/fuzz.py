"""The long fuzzing run: N hostile or malformed cases of every message the manager accepts.

Each message type runs against a fresh manager (gRPC on 127.0.0.1, SQLite) with a victim
cluster synced beforehand (``navigator.testing.fuzz``). After every case the manager must
still answer, the victim hold exactly what it held, every answer be well formed and nothing
be logged as an error. Prints per type the cases run, failures, known defects and cases per
second, then the total and the machine's load; exits 1 if a property failed, printing the
minimal failing example hypothesis shrank it to. Known defects (``KNOWN_DEFECTS``, reported to
their owners) are counted and listed; ``--strict`` fails on them too.

    .venv/bin/python benchmarks/fuzz.py [--cases 10000] [--seed S] [--type NAME ...] [--jobs 2] [--strict]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import random
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from loguru import logger

from navigator.testing.fuzz import KNOWN_DEFECTS, MESSAGE_TYPES, FuzzRunner, TypeResult, run_message_type


def run_type(name: str, cases: int, seed: int) -> dict[str, Any]:
    """One message type against its own manager (in a worker process)."""
    logger.remove()  # the manager's warnings about each refused message would drown the table

    def progress(done: int) -> None:
        if done % 2000 == 0:
            print(f"  {name}: {done} cases", flush=True)

    with tempfile.TemporaryDirectory(prefix="navigator-fuzz-") as tmp, FuzzRunner(Path(tmp)) as runner:
        result = run_message_type(runner, name, cases, seed=seed, on_case=progress, tolerate_known=True)
    return dataclasses.asdict(result)


def table(results: list[TypeResult], wall: float) -> str:
    rows = [("message type", "cases", "failures", "known defects", "cases/s")]
    for r in results:
        known = ", ".join(f"{k} {n}" for k, n in sorted(r.known.items())) or "-"
        rows.append((r.name, str(r.cases), str(len(r.failures)), known, f"{r.cases / r.seconds:.0f}" if r.seconds else "-"))
    total = sum(r.cases for r in results)
    known_total = sum(n for r in results for n in r.known.values())
    rows.append(("total", str(total), str(sum(len(r.failures) for r in results)), str(known_total), f"{total / wall:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 or i == 3 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=int(os.environ.get("CASES", "1000")), help="per message type")
    parser.add_argument("--seed", type=int, help="default: a random one, printed")
    parser.add_argument("--type", action="append", choices=sorted(MESSAGE_TYPES), help="default: all")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="message types run in parallel")
    parser.add_argument("--strict", action="store_true", help="known defects fail the run too")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    names = args.type or list(MESSAGE_TYPES)
    print(
        f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs); {args.cases} cases per type, "
        f"{len(names)} types, seed {seed}, {args.jobs} jobs",
        flush=True,
    )
    started = time.monotonic()
    results: dict[str, TypeResult] = {}
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_type, name, args.cases, seed): name for name in names}
        for future in as_completed(futures):
            result = TypeResult(**future.result())
            results[result.name] = result
            rate = result.cases / result.seconds if result.seconds else 0.0
            print(f"{result.name}: {result.cases} cases, {len(result.failures)} failures, {rate:.0f}/s", flush=True)
            for failure in result.failures:  # at once: a long run may be cut short
                print(f"FAILED {result.name} (seed {seed}):\n{failure}\n", flush=True)
    wall = time.monotonic() - started
    ordered = [results[name] for name in names]
    print()
    print(table(ordered, wall))
    print(f"\n{wall:.0f} s; load average at the end: {os.getloadavg()[0]:.2f}")
    seen = sorted({k for r in ordered for k in r.known})
    for name in seen:
        print(f"KNOWN DEFECT {name}: {KNOWN_DEFECTS[name][1]}")
    for r in ordered:
        for failure in r.failures:
            print(f"\nFAILED {r.name} (seed {seed}):\n{failure[:3000]}")
    return 1 if any(r.failures for r in ordered) or (args.strict and seen) else 0


if __name__ == "__main__":
    sys.exit(main())
