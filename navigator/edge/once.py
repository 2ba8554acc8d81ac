"""``navigator edge --once``: one collection, a summary, an exit code; no manager needed.

The quickest way to check what an edge would send and whether its RBAC allows
it: every kind is listed exactly as the sync loop would (paging, retries), then
encoded with the first configured serializer to report the state's size.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson
import pluggy
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from navigator import plugin_manager
from navigator.config.edge import EdgeConfig
from navigator.edge.collect import CollectResult, KindCollector, ProgressFn
from navigator.edge.kube import KubeClient
from navigator.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_PARTIAL


@dataclass(slots=True)
class OnceReport:
    cluster: str
    api_server: str
    results: dict[str, CollectResult]
    #: Bytes of the encoded resources per kind, with ``serializer``.
    state_bytes: dict[str, int]
    serializer: str
    seconds: float

    @property
    def exit_code(self) -> int:
        failed = [r for r in self.results.values() if not r.ok]
        if not failed:
            return EXIT_OK
        return EXIT_FAILURE if len(failed) == len(self.results) else EXIT_PARTIAL

    def as_dict(self) -> dict[str, Any]:
        return {
            "cluster": self.cluster,
            "api_server": self.api_server,
            "serializer": self.serializer,
            "seconds": round(self.seconds, 3),
            "ok": self.exit_code == EXIT_OK,
            "kinds": [
                {
                    "kind": kind,
                    "objects": r.count if r.ok else 0,
                    "api_bytes": r.api_bytes,
                    "state_bytes": self.state_bytes.get(kind, 0),
                    "seconds": round(r.duration, 3),
                    "skipped": r.skipped,
                    "error": None
                    if r.error is None
                    else {"message": r.error.message, "http_status": r.error.http_status, "attempts": r.error.attempts},
                }
                for kind, r in self.results.items()
            ],
        }


async def collect_once(
    config: EdgeConfig, pm: pluggy.PluginManager | None = None, progress: ProgressFn | None = None
) -> OnceReport:
    """Collect every enabled kind once, concurrently, as the sync loop would."""
    pm = pm or plugin_manager.load_plugins(
        {"collectors": config.plugins.collectors, "serializers": config.plugins.serializers}
    )
    collectors = plugin_manager.collectors(pm, config.plugins.collectors)
    serializers = plugin_manager.serializers(pm, config.plugins.serializers)
    serializer = next(iter(serializers.values()))
    client = await asyncio.to_thread(KubeClient.from_config, config.kubernetes)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(collectors), thread_name_prefix="navigator-once") as executor:
        try:
            runners = [
                KindCollector(c, client, config.kubernetes, serializer, executor=executor, progress=progress)
                for c in collectors.values()
            ]
            results = await asyncio.gather(*(r.collect() for r in runners))
        finally:
            client.close()
    seconds = time.monotonic() - started
    state_bytes = {r.kind: r.state_bytes for r in results if r.ok}
    return OnceReport(
        cluster=config.cluster.id,
        api_server=client.host,
        results={r.kind: r for r in results},
        state_bytes=state_bytes,
        serializer=serializer.name,
        seconds=seconds,
    )


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def summary_table(report: OnceReport) -> Table:
    table = Table(
        title=f"cluster {report.cluster} via {report.api_server} in {report.seconds:.2f}s",
        header_style="bold",
        box=None,
        pad_edge=False,
    )
    for column in ("KIND", "OBJECTS", "API BYTES", f"STATE BYTES ({report.serializer})", "SECONDS", "STATUS"):
        table.add_column(column, justify="right" if column not in ("KIND", "STATUS") else "left")
    for kind, r in report.results.items():
        if r.error is not None:
            status = f"FAILED (HTTP {r.error.http_status})" if r.error.http_status else "FAILED"
        else:
            status = f"ok ({r.skipped} unreadable skipped)" if r.skipped else "ok"
        table.add_row(
            kind,
            str(r.count) if r.ok else "-",
            _size(r.api_bytes),
            _size(report.state_bytes[kind]) if kind in report.state_bytes else "-",
            f"{r.duration:.2f}",
            status,
        )
    return table


async def run_once(config: EdgeConfig, output: str = "table") -> int:
    """Collect once with a progress line on stderr, print the summary on stdout, return the exit code."""
    err = Console(stderr=True, soft_wrap=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=None),
        TextColumn("{task.completed} objects"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}
        loop = asyncio.get_running_loop()

        def progress(kind: str, listed: int) -> None:
            def update() -> None:
                if kind not in tasks:
                    tasks[kind] = bar.add_task(f"listing {kind}", total=None)
                bar.update(tasks[kind], completed=listed)

            loop.call_soon_threadsafe(update)

        report = await collect_once(config, progress=progress)
    if output == "json":
        sys.stdout.buffer.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
    else:
        out = Console(soft_wrap=True)
        out.print(summary_table(report))
        for kind, r in report.results.items():
            if r.error is None:
                continue
            out.print(f"{kind}: failed after {r.error.attempts} attempt(s): {r.error.message}", highlight=False)
            if r.error.http_status in (401, 403):
                err.print(
                    f"[yellow]hint:[/] {kind}: the API refused access ({r.error.http_status}); "
                    "the edge needs list and watch on it (see docs/deployment.md)"
                )
    return report.exit_code

