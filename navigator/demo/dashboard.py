"""The live terminal view of a fleet, and its plain-text form for logs and pipes.

Rendering takes plain data (``FleetStatus``) so it can be shown live, printed
once at the end, or written as status lines when stdout is not a terminal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from navigator.cli.output import short_duration
from navigator.demo.status import WAITING, ClusterStatus, FleetStatus

STATUS_STYLES = {
    "HEALTHY": "bold green",
    "INITIALIZING": "bold yellow",
    "STALE": "bold dark_orange",
    "DISCONNECTED": "bold red",
    WAITING: "dim",
}
#: A kind's name longer than this is shown by its first short name, so the table stays within 120 columns.
LONG_TITLE = 10


@dataclass(slots=True)
class DashboardInfo:
    """What does not change while the fleet runs: where things are and what to try."""

    title: str
    manager_address: str
    details: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    #: Column titles by kind (``kind_titles``); a kind not named here shows as its name, upper-cased.
    kind_titles: dict[str, str] = field(default_factory=dict)


def kind_titles(kinds: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Titles of the count columns from the kinds a manager describes (``QueryClient.kinds()``): a long
    kind name is shown by the first short name its collector declares (``endpointslices``: EPS)."""
    return {
        k["kind"]: k["short_names"][0].upper()
        for k in kinds
        if len(k["kind"]) > LONG_TITLE and k.get("short_names")
    }


def age(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    if seconds < 60:
        return f"{seconds}s ago"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s ago"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m ago"


def freshness(cluster: ClusterStatus, now: datetime) -> str:
    """The copy's age at ``now``: ``-`` until the manager has applied a state."""
    if cluster.fresh_as_of is None:
        return "-"
    return short_duration((now - cluster.fresh_as_of).total_seconds()) or "-"


def kinds_of(fleet: FleetStatus) -> list[str]:
    """Every kind some cluster has, in the order ``navigator query clusters`` shows them."""
    return sorted({kind for c in fleet.clusters for kind in c.counts})


def status_text(cluster: ClusterStatus) -> Text:
    text = Text(cluster.status, style=STATUS_STYLES.get(cluster.status, "bold"))
    if cluster.status == "INITIALIZING" and cluster.progress is not None:
        text.append(f" {cluster.progress:,}", style="yellow")
    return text


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def fleet_table(fleet: FleetStatus, titles: Mapping[str, str] | None = None) -> Table:
    kinds = kinds_of(fleet)
    titles = titles or {}
    table = Table(header_style="bold", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    table.add_column("CLUSTER", style="bold", no_wrap=True)
    table.add_column("STATUS", no_wrap=True)
    table.add_column("EDGE", no_wrap=True, overflow="ellipsis", max_width=28)
    table.add_column("LAST SYNC", justify="right", no_wrap=True)
    table.add_column("FRESH", justify="right", no_wrap=True)
    for kind in kinds:
        table.add_column(titles.get(kind, kind.upper()), justify="right", no_wrap=True)
    table.add_column("CHANGES/MIN", justify="right", no_wrap=True)
    table.add_column("ERRORS", justify="right", no_wrap=True)
    for c in fleet.clusters:
        errors = Text(str(len(c.errors)), style="bold red") if c.errors else Text("-", style="dim")
        table.add_row(
            c.cluster,
            status_text(c),
            c.edge_id or "-",
            age(c.last_sync, fleet.taken_at),
            freshness(c, fleet.taken_at),
            *(f"{c.counts[k]:,}" if k in c.counts else "-" for k in kinds),
            _rate(c.changes_per_minute),
            errors,
        )
    return table


def header(info: DashboardInfo, fleet: FleetStatus, elapsed: float) -> Panel:
    healthy = sum(c.status == "HEALTHY" for c in fleet.clusters)
    lines = Text()
    lines.append(f"manager {info.manager_address}", style="bold cyan")
    lines.append(f"   {healthy}/{len(fleet.clusters)} clusters HEALTHY   up {int(elapsed)}s\n")
    for detail in info.details:
        lines.append(detail + "\n", style="dim")
    if info.commands:
        lines.append("try meanwhile, in another terminal:\n", style="bold")
        for command in info.commands:
            lines.append(f"  {command}\n", style="green")
    if fleet.error:
        lines.append(fleet.error + "\n", style="red")
    for notice in fleet.notices:
        lines.append(notice + "\n", style="yellow")
    lines.rstrip()
    return Panel(lines, title=info.title, title_align="left", border_style="cyan")


def error_lines(fleet: FleetStatus) -> Text:
    """Error messages are long: listed under the table so its columns keep their width."""
    text = Text()
    for c in fleet.clusters:
        for error in c.errors:
            text.append(f"{c.cluster}: ", style="bold red")
            text.append(error + "\n")
    text.rstrip()
    return text


def render(info: DashboardInfo, fleet: FleetStatus, elapsed: float) -> RenderableType:
    parts: list[RenderableType] = [header(info, fleet, elapsed), fleet_table(fleet, info.kind_titles)]
    if any(c.errors for c in fleet.clusters):
        parts.append(error_lines(fleet))
    return Group(*parts)


def status_lines(fleet: FleetStatus) -> list[str]:
    """One line per cluster for a pipe or a CI log, where a live view would be garbage."""
    stamp = fleet.taken_at.strftime("%H:%M:%S")
    lines = [f"{stamp} {fleet.error}"] if fleet.error else []
    lines += [f"{stamp} {notice}" for notice in fleet.notices]
    for c in fleet.clusters:
        counts = " ".join(f"{k}={c.counts[k]}" for k in kinds_of(fleet) if k in c.counts)
        parts = [stamp, c.cluster, c.status]
        if c.status == "INITIALIZING" and c.progress is not None:
            parts.append(f"progress={c.progress}")
        parts += [f"edge={c.edge_id or '-'}", f"last_sync={age(c.last_sync, fleet.taken_at).replace(' ', '_')}"]
        parts += [f"freshness={freshness(c, fleet.taken_at)}", f"lag={short_duration(c.lag) or '-'}"]
        if counts:
            parts.append(counts)
        parts.append(f"changes/min={_rate(c.changes_per_minute)}")
        parts.append(f"errors={len(c.errors)}")
        lines.append(" ".join(parts))
    return lines


class LiveDashboard:
    """``rich.live.Live`` around ``render``; ``update`` redraws with a new reading."""

    def __init__(self, info: DashboardInfo, console: Console | None = None) -> None:
        self.info = info
        self.console = console or Console()
        self._live = Live(console=self.console, auto_refresh=False, transient=False, redirect_stderr=False)

    def __enter__(self) -> LiveDashboard:
        self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.__exit__(kind, exc, tb)

    def update(self, fleet: FleetStatus, elapsed: float) -> None:
        self._live.update(render(self.info, fleet, elapsed), refresh=True)
