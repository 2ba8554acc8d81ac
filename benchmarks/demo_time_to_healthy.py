"""How long ``navigator demo`` takes from the command to every cluster HEALTHY, by cluster size.

Runs the real command (simulators, manager, edges as processes) and reads its
plain status lines. Uses every core of the machine; run it alone.

    .venv/bin/python benchmarks/demo_time_to_healthy.py [PODS ...]
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

CLUSTERS = 3
LINE = re.compile(r"^\d\d:\d\d:\d\d (\S+) ([A-Z]+) edge=")


def time_to_healthy(pods: int) -> tuple[float | None, float]:
    """Seconds until the first reading with every cluster HEALTHY, and the whole run's seconds."""
    command = [
        sys.executable, "-m", "navigator.cli.main", "demo", "--clusters", str(CLUSTERS), "--pods", str(pods),
        "--port", "0", "--duration", str(60 + pods // 1000), "--no-dashboard",
    ]
    start = time.monotonic()
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert demo.stdout is not None
    statuses: dict[str, str] = {}
    healthy_at = None
    for line in demo.stdout:
        match = LINE.match(line)
        if match:
            statuses[match.group(1)] = match.group(2)
        if healthy_at is None and len(statuses) == CLUSTERS and set(statuses.values()) == {"HEALTHY"}:
            healthy_at = time.monotonic() - start
            demo.terminate()
    demo.wait()
    return healthy_at, time.monotonic() - start


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [300, 2000, 20000]
    print(f"{'pods/cluster':>12} {'clusters':>8} {'all HEALTHY after':>18} {'run incl. shutdown':>19}")
    for pods in sizes:
        healthy, total = time_to_healthy(pods)
        shown = f"{healthy:.1f}s" if healthy is not None else "never"
        print(f"{pods:>12,} {CLUSTERS:>8} {shown:>18} {total:>18.1f}s", flush=True)


if __name__ == "__main__":
    main()
