"""Real ``navigator`` processes for end-to-end tests: simulator, manager and edges as a user runs them.

Starting, waiting for and stopping a child is ``navigator.processes``' job (the
demo runs its children with it too); this module adds what a test wants on top:
a ``Fleet`` that writes the configs and stops everything at the end, and
``navigator query`` and ``kubectl`` helpers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson

from navigator import processes
from navigator.processes import Child, ProcessError, free_port, navigator_command

__all__ = [
    "Child",
    "Fleet",
    "ProcessError",
    "free_port",
    "kubectl_count",
    "navigator_command",
    "query",
    "query_ok",
    "wait_until",
]

T = TypeVar("T")


class Fleet:
    """Starts processes and stops whatever is still running at the end of the test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[Child] = []

    def start(self, name: str, *args: str) -> Child:
        """``navigator <args>``, its output in ``<tmp>/<name>.log``."""
        proc = processes.start(name, args, self.tmp / f"{name}.log")
        self.procs.append(proc)
        return proc

    def kubesim(self, name: str, *extra: str) -> tuple[Child, Path]:
        kubeconfig = self.tmp / f"{name}.kubeconfig"
        proc = self.start(
            f"kubesim-{name}", "kubesim", "--kubeconfig", str(kubeconfig), "--name", name, *extra
        )
        proc.wait_for("listening on")
        return proc, kubeconfig

    def manager(
        self, name: str, port: int, db: Path, grace: str = "2s", tokens: dict[str, str] | None = None
    ) -> Child:
        config = self.tmp / f"{name}.yaml"
        auth = f"auth:\n  tokens: {orjson.dumps(tokens).decode()}\n" if tokens else ""
        config.write_text(
            f"listen: 127.0.0.1:{port}\nstorage:\n  plugin: sqlite\n  options: {{path: '{db}'}}\n"
            f"grace_period: {grace}\n{auth}"
        )
        proc = self.start(name, "manager", "--config", str(config))
        proc.wait_until(lambda: query_ok(port), f"an answer on port {port}", interval=0.3)
        return proc

    def edge(self, name: str, cluster: str, kubeconfig: Path, port: int, token: str | None = None,
             interval: str = "2s", edge_id: str | None = None) -> Child:  # fmt: skip
        config = self.tmp / f"{name}.yaml"
        lines = [
            f"cluster: {{id: {cluster}, metadata: {{region: test-1, environment: test}}}}",
            f"kubernetes: {{kubeconfig: '{kubeconfig}', page_size: 100}}",
            f"manager: {{address: '127.0.0.1:{port}', reconnect: {{initial: 0.2s, max: 1s}}"
            + (f", token: {token}" if token else "")
            + "}",
            f"sync: {{interval: {interval}, adaptive: {{enabled: false, min_interval: 1s, max_interval: 1m}}}}",
        ]
        if edge_id:
            lines.append(f"edge_id: {edge_id}")
        config.write_text("\n".join(lines) + "\n")
        return self.start(name, "edge", "--config", str(config))

    def stop_all(self) -> None:
        """Newest first: edges before the manager before the simulators they watch."""
        for proc in reversed(self.procs):
            proc.stop()


def query_ok(port: int) -> bool:
    return query(port, "clusters", check=False) is not None


def query(port: int, what: str, *args: str, check: bool = True) -> Any:
    result = subprocess.run(
        navigator_command("query", what, "--manager", f"127.0.0.1:{port}", "-o", "json", *args),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        if check:
            raise AssertionError(f"navigator query {what} failed: {result.stderr}")
        return None
    return orjson.loads(result.stdout)


def wait_until(predicate: Callable[[], T | None], what: str, proc: Child | None = None, timeout: float = 60) -> T:
    """Poll until ``predicate`` returns something true, and return that; fail early if ``proc`` exits.
    ``what`` names the condition in the error: "east HEALTHY"."""
    return processes.wait_until(predicate, what, child=proc, timeout=timeout, interval=0.3)


def kubectl_count(kubeconfig: Path, resource: str) -> int:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", resource, "-A", "--chunk-size=50", "-o", "json"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return len(orjson.loads(out)["items"])
