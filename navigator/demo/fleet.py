"""A manager on SQLite and one edge per cluster, as child processes in one working directory.

Shared by ``navigator demo`` (which adds simulated clusters in front) and
``navigator local`` (which points the edges at real kubeconfig contexts).
Everything lives in the directory: configs, logs, the database; a temporary
one is removed after a clean run and kept, with its path printed, otherwise.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType

from rich.console import Console

from navigator import processes
from navigator.demo.configs import EdgePlan, edge_config, manager_config, write_yaml
from navigator.demo.dashboard import DashboardInfo
from navigator.demo.monitor import watch
from navigator.demo.status import FleetStatus, StatusPoller
from navigator.processes import Child

HOST = "127.0.0.1"
DEFAULT_PORT = 50051
#: The web dashboard's port when free (else any free one).
DEFAULT_HTTP_PORT = 8080


def choose_port(requested: int | None, default: int | None = None) -> int:
    """The requested port; else ``default`` when free, else any free one (0 means any too)."""
    if requested:
        return requested
    if requested is None and default is not None and processes.port_is_free(default, HOST):
        return default
    return processes.free_port(HOST)


class Fleet:
    """Start, watch and stop the processes; use as a context manager so they always stop."""

    def __init__(
        self,
        *,
        directory: Path | None,
        port: int | None,
        metrics_port: int | None,
        interval: float,
        console: Console,
        http_port: int | None = None,
    ) -> None:
        self.temporary = directory is None
        self.directory = Path(tempfile.mkdtemp(prefix="navigator-")) if directory is None else directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = choose_port(port, DEFAULT_PORT)
        self.metrics_port = choose_port(metrics_port)
        self.http_port = choose_port(http_port, DEFAULT_HTTP_PORT)
        self.interval = interval
        self.console = console
        self.started = time.monotonic()
        #: Stopped last: whatever the edges depend on (the simulated clusters).
        self.backing: list[Child] = []
        self.manager: Child | None = None
        self.edges: dict[str, Child] = {}
        self.plans: list[EdgePlan] = []
        self.keep_directory = not self.temporary
        self._reported: set[str] = set()

    # -- paths -----------------------------------------------------------------------------------

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def dashboard_url(self) -> str:
        """The manager's HTTP API and web dashboard."""
        return f"http://{HOST}:{self.http_port}/"

    @property
    def metrics_url(self) -> str:
        return f"http://{HOST}:{self.metrics_port}/metrics"

    @property
    def database(self) -> Path:
        return self.directory / "navigator.db"

    @property
    def logs(self) -> Path:
        return self.directory / "logs"

    # -- starting --------------------------------------------------------------------------------

    def start_manager(self, plans: Sequence[EdgePlan]) -> Child:
        config = manager_config(
            listen=self.address,
            database=self.database,
            tokens={p.cluster: p.token for p in plans},
            metrics_port=self.metrics_port,
            http_listen=f"{HOST}:{self.http_port}",
        )
        path = write_yaml(self.directory / "manager.yaml", config)
        self.manager = processes.start("manager", ["manager", "--config", str(path)], self.logs / "manager.log")
        return self.manager

    def wait_for_manager(self, timeout: float = 60.0) -> None:
        """Until the query service answers: edges connecting earlier would only back off."""
        assert self.manager is not None
        poller = StatusPoller(self.address, timeout=1.0)
        try:
            self.manager.wait_until(
                lambda: poller.poll().error is None, f"an answer on {self.address}", timeout, interval=0.2
            )
        finally:
            poller.close()

    def start_edges(self, plans: Sequence[EdgePlan]) -> None:
        for plan in plans:
            if plan.metrics_port is None:
                plan.metrics_port = processes.free_port(HOST)
            config = edge_config(plan, manager=self.address, interval=self.interval)
            path = write_yaml(self.directory / "edges" / f"{plan.cluster}.yaml", config)
            self.edges[plan.cluster] = processes.start(
                f"edge {plan.cluster}", ["edge", "--config", str(path)], self.logs / f"edge-{plan.cluster}.log"
            )
            self.plans.append(plan)

    # -- watching --------------------------------------------------------------------------------

    def notices(self) -> list[str]:
        """Children that exited: said once in the notices, then kept as a short reminder."""
        found = []
        for child in [*self.backing, *([self.manager] if self.manager else []), *self.edges.values()]:
            if not child.alive():
                found.append(f"{child.name} (pid {child.pid}) exited with code {child.returncode}: see {child.log_path}")
        return found

    def watch(
        self,
        info: DashboardInfo,
        *,
        duration: float | None,
        live: bool,
        on_reading: Callable[[FleetStatus], None] | None = None,
    ) -> tuple[FleetStatus, set[str]]:
        """Show the fleet until ``duration`` seconds after start (or Ctrl-C); the last reading and
        the clusters that were HEALTHY at some point."""
        poller = StatusPoller(
            self.address,
            expected=[p.cluster for p in self.plans],
            manager_metrics_url=self.metrics_url,
            edge_metrics_urls={p.cluster: f"http://{HOST}:{p.metrics_port}/metrics" for p in self.plans},
        )
        deadline = None if duration is None else self.started + duration
        try:
            last = watch(
                poller, info, started=self.started, deadline=deadline, live=live,
                console=self.console, notices=self.notices, on_reading=on_reading,
            )
        finally:
            poller.close()
        return last, set(poller.reached_healthy)

    def edge_pids(self) -> str:
        return ", ".join(f"{cluster} {child.pid}" for cluster, child in self.edges.items())

    # -- stopping --------------------------------------------------------------------------------

    def stop(self) -> None:
        """Edges first (they close their streams), then the manager, then what the edges watched."""
        processes.stop(list(self.edges.values()))
        if self.manager is not None:
            processes.stop([self.manager])
        processes.stop(self.backing)

    def __enter__(self) -> Fleet:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self.keep_directory or kind is not None:
            if self.temporary:
                self.console.print(f"[dim]configs, logs and database kept in {self.directory}[/dim]")
        else:
            shutil.rmtree(self.directory, ignore_errors=True)
