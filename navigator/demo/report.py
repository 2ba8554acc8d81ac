"""The end of a run: the final table and one line saying whether every cluster synced."""

from __future__ import annotations

from collections.abc import Set

from rich.console import Console

from navigator.demo.dashboard import error_lines, fleet_table
from navigator.demo.status import FleetStatus


def final_report(console: Console, last: FleetStatus, reached_healthy: Set[str], *, show_table: bool) -> int:
    """0 when every cluster was HEALTHY at some point, else 1 (the live view already shows the table)."""
    if show_table:
        console.print(fleet_table(last))
        if any(c.errors for c in last.clusters):
            console.print(error_lines(last))
    missing = [c.cluster for c in last.clusters if c.cluster not in reached_healthy]
    if last.clusters and not missing:
        n = len(last.clusters)
        now = [f"{c.cluster} {c.status}" for c in last.clusters if c.status != "HEALTHY"]
        console.print(
            f"[bold green]{n}/{n} clusters reached HEALTHY[/bold green]"
            + (f" (at the end: {', '.join(now)})" if now else ""),
            highlight=False,
        )
        return 0
    if not last.clusters:
        console.print("[bold red]no cluster was seen[/bold red]")
        return 1
    reached = len(last.clusters) - len(missing)
    console.print(
        f"[bold red]{reached}/{len(last.clusters)} clusters reached HEALTHY; never: {', '.join(missing)}[/bold red]"
        " (the logs say why)",
        highlight=False,
    )
    return 1
