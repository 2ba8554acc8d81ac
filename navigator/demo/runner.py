"""``navigator demo``: simulated clusters, a manager on SQLite and one edge each, watched live.

Everything talks for real: the edges read the simulators with the official
Kubernetes client over HTTP and stream to the manager over gRPC on
localhost; the dashboard asks the manager's query service. The manager also
serves its HTTP API and web dashboard, whose URL the demo prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from navigator.client.client import QueryClient, QueryError
from navigator.demo.clusters import fleet as simulated_fleet
from navigator.demo.configs import EdgePlan
from navigator.demo.dashboard import DashboardInfo, kind_titles
from navigator.demo.fleet import Fleet
from navigator.demo.report import final_report
from navigator.demo.simulators import default_services, start_simulator, startup_timeout, wait_until_serving
from navigator.demo.status import FleetStatus

#: Namespaces every cluster has; a service from a workload namespace makes a better example.
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(slots=True)
class DemoOptions:
    clusters: int = 3
    pods: int = 200
    services: int | None = None
    churn: float = 0.0
    duration: float | None = None
    port: int | None = None
    metrics_port: int | None = None
    interval: float = 5.0
    directory: Path | None = None
    #: Live view when stdout is a terminal; False: status lines only.
    dashboard: bool = True


def _kind_titles(address: str) -> dict[str, str]:
    """The count columns' titles from the kinds the manager describes (EPS, not ENDPOINTSLICES);
    none when it cannot say, and the columns show the kinds' names."""
    try:
        with QueryClient(address, timeout=2.0) as client:
            return kind_titles(client.kinds())
    except QueryError:
        return {}


def demo_commands(fleet: Fleet, first: str) -> list[str]:
    """Ready to paste while the demo runs."""
    manager = fleet.address
    kubeconfig = fleet.directory / "clusters" / f"{first}.kubeconfig"
    return [
        f"navigator query clusters --manager {manager}",
        f"navigator query pods --manager {manager} --cluster {first}",
        f"navigator query services --manager {manager} -o json",
        f"kubectl --kubeconfig {kubeconfig} get pods -A",
        f"curl -s {fleet.dashboard_url}api/v1/clusters",
        f"curl -s {fleet.metrics_url} | grep ^navigator_",
    ]


def service_example(info: DashboardInfo, fleet: Fleet, cluster: str) -> Callable[[FleetStatus], None]:
    """Once ``cluster`` is synced, add a ``navigator query service`` command naming one of its services."""
    found = False

    def on_reading(status: FleetStatus) -> None:
        nonlocal found
        if found or not any(c.cluster == cluster and c.status == "HEALTHY" for c in status.clusters):
            return
        found = True
        try:
            with QueryClient(fleet.address, timeout=2.0) as client:
                rows = list(client.resources(kind="services", cluster=cluster, limit=50))
        except QueryError:
            return
        rows = [r for r in rows if r["namespace"] not in SYSTEM_NAMESPACES] or rows
        if rows:
            row = rows[0]
            info.commands.insert(
                3, f"navigator query service {row['name']} -n {row['namespace']} --manager {fleet.address}"
            )

    return on_reading


def run_demo(options: DemoOptions, console: Console) -> int:
    """Exit code 0 when every cluster was HEALTHY at some point before the end."""
    clusters = simulated_fleet(options.clusters)
    services = default_services(options.pods) if options.services is None else options.services
    live = options.dashboard and console.is_terminal
    with Fleet(
        directory=options.directory,
        port=options.port,
        metrics_port=options.metrics_port,
        interval=options.interval,
        console=console,
    ) as fleet:
        console.print(
            f"starting {len(clusters)} simulated cluster{'s' if len(clusters) != 1 else ''} "
            f"({options.pods:,} pods, {services:,} services each"
            + (f", {options.churn:g} changes/s" if options.churn else "")
            + f"), a manager on {fleet.address} and one edge per cluster in {fleet.directory}",
            highlight=False,
        )
        started = [start_simulator(c, fleet.directory, pods=options.pods, services=services, churn=options.churn)
                   for c in clusters]
        fleet.backing = [child for child, _ in started]
        plans = [
            EdgePlan(cluster=c.id, kubeconfig=kubeconfig, context=c.id, metadata=c.metadata)
            for c, (_, kubeconfig) in zip(clusters, started, strict=True)
        ]
        fleet.start_manager(plans)
        deadline = time.monotonic() + startup_timeout(options.pods)
        for child in fleet.backing:
            wait_until_serving(child, max(1.0, deadline - time.monotonic()))
        fleet.wait_for_manager()
        fleet.start_edges(plans)
        console.print(f"dashboard: {fleet.dashboard_url}", highlight=False)
        info = DashboardInfo(
            title="Navigator demo",
            manager_address=fleet.address,
            details=[
                f"web dashboard and HTTP API: {fleet.dashboard_url}",
                f"storage: sqlite {fleet.database}   logs: {fleet.logs}",
                f"edge pids (kill one to watch its cluster go DISCONNECTED): {fleet.edge_pids()}",
                "Ctrl-C stops everything" + (f"; ends by itself after {options.duration:g}s" if options.duration else ""),
            ],
            commands=demo_commands(fleet, clusters[0].id),
            kind_titles=_kind_titles(fleet.address),
        )
        last, reached = fleet.watch(
            info, duration=options.duration, live=live, on_reading=service_example(info, fleet, clusters[0].id)
        )
        code = final_report(console, last, reached, show_table=not live)
        fleet.keep_directory = fleet.keep_directory or code != 0
    return code
