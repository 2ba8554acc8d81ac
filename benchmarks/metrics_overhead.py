"""How much the metrics calls on the hot path cost: they run per message and per state.

    .venv/bin/python benchmarks/metrics_overhead.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

from navigator import metrics
from navigator.resource import Change, ChangeType

N = 200_000


def per_call(label: str, fn: Callable[[], None], n: int = N) -> None:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    elapsed = time.perf_counter() - start
    print(f"{label:<44} {elapsed / n * 1e6:7.2f} µs/call   ({n:,} calls in {elapsed:.2f}s)")


def main() -> None:
    counts = {"services": 10_000, "endpointslices": 10_500, "pods": 150_000}

    changes = [
        Change("bench", "pods", "default", f"p{i}", f"u{i}", ChangeType.MODIFIED, "1", "2") for i in range(8)
    ]

    per_call("count_edge_ack", lambda: metrics.count_edge_ack("bench", "ACK_STATUS_APPLIED"))
    per_call("count_edge_bytes(sent=...)", lambda: metrics.count_edge_bytes("bench", sent=4096))
    per_call("count_manager_bytes(received=...)", lambda: metrics.count_manager_bytes("bench", received=4096))
    per_call("count_received_objects", lambda: metrics.count_received_objects("bench", 500))
    per_call("record_applied (delta, 8 changes)", lambda: metrics.record_applied("bench", False, 0.01, changes))
    per_call("observe_edge_sync (3 kinds)", lambda: metrics.observe_edge_sync("bench", 0.5, counts))
    per_call("set_collect_progress", lambda: metrics.set_collect_progress("bench", "pods", 1000))
    server = metrics.start_metrics_server("127.0.0.1", 0)
    try:
        import httpx

        with httpx.Client() as client:
            start = time.perf_counter()
            for _ in range(200):
                client.get(server.url).raise_for_status()
            print(f"{'scrape over HTTP':<44} {(time.perf_counter() - start) / 200 * 1e3:7.2f} ms/scrape")
    finally:
        server.close()


if __name__ == "__main__":
    main()
