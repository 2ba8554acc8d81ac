"""``navigator local``: one manager and one edge per kubeconfig context, watched live."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from navigator.demo.configs import EdgePlan
from navigator.demo.dashboard import DashboardInfo
from navigator.demo.fleet import Fleet
from navigator.demo.report import final_report
from navigator.local.contexts import cluster_ids, kubeconfig_files, list_contexts, select


@dataclass(slots=True)
class LocalOptions:
    kubeconfig: Path | None = None
    contexts: list[str] | None = None
    duration: float | None = None
    port: int | None = None
    metrics_port: int | None = None
    interval: float = 30.0
    directory: Path | None = None
    dashboard: bool = True


def plans_for(options: LocalOptions) -> list[EdgePlan]:
    contexts = select(list_contexts(kubeconfig_files(options.kubeconfig)), options.contexts)
    return [
        EdgePlan(cluster=cid, kubeconfig=c.kubeconfig, context=c.name,
                 metadata={"context": c.name, **({"kubeconfig_cluster": c.cluster} if c.cluster else {})})
        for c, cid in zip(contexts, cluster_ids(contexts), strict=True)
    ]


def run_local(options: LocalOptions, console: Console) -> int:
    """Exit code 0 when every cluster was HEALTHY at some point before the end."""
    plans = plans_for(options)
    live = options.dashboard and console.is_terminal
    with Fleet(
        directory=options.directory,
        port=options.port,
        metrics_port=options.metrics_port,
        interval=options.interval,
        console=console,
    ) as fleet:
        console.print(
            f"watching {len(plans)} clusters ({', '.join(p.context or p.cluster for p in plans)}) "
            f"with a manager on {fleet.address}; files in {fleet.directory}",
            highlight=False,
        )
        fleet.start_manager(plans)
        fleet.wait_for_manager()
        fleet.start_edges(plans)
        first = plans[0].cluster
        info = DashboardInfo(
            title="Navigator local",
            manager_address=fleet.address,
            details=[
                f"storage: sqlite {fleet.database}   logs: {fleet.logs}",
                f"edge pids: {fleet.edge_pids()}",
                "Ctrl-C stops everything" + (f"; ends by itself after {options.duration:g}s" if options.duration else ""),
            ],
            commands=[
                f"navigator query clusters --manager {fleet.address}",
                f"navigator query pods --manager {fleet.address} --cluster {first}",
                f"curl -s {fleet.metrics_url} | grep ^navigator_",
            ],
        )
        last, reached = fleet.watch(info, duration=options.duration, live=live)
        code = final_report(console, last, reached, show_table=not live)
        fleet.keep_directory = fleet.keep_directory or code != 0
    return code
