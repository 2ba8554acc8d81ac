"""Simulated clusters for the demo: one ``navigator kubesim`` process per cluster."""

from __future__ import annotations

import re
from pathlib import Path

from navigator import processes
from navigator.demo.clusters import SimulatedCluster
from navigator.processes import Child

LISTENING = re.compile(r"listening on (https?://\S+)")


def default_services(pods: int) -> int:
    """About one Service per ten pods, like Deployments of a few replicas behind Services."""
    return max(1, pods // 10) if pods else 0


def default_namespaces(pods: int) -> int:
    return max(1, min(8, pods // 250))


def start_simulator(
    cluster: SimulatedCluster, directory: Path, *, pods: int, services: int, churn: float
) -> tuple[Child, Path]:
    """Start serving ``cluster``; its kubeconfig (context = cluster id) appears at the returned path."""
    kubeconfig = directory / "clusters" / f"{cluster.id}.kubeconfig"
    args = [
        "kubesim",
        "--kubeconfig", str(kubeconfig),
        "--name", cluster.id,
        "--port", "0",
        "--pods", str(pods),
        "--services", str(services),
        "--namespaces", str(default_namespaces(pods)),
        "--seed", str(cluster.seed),
        "--churn", str(churn),
    ]  # no --token: kubectl sends no credentials over plain HTTP, and the docs use kubectl
    child = processes.start(f"simulated cluster {cluster.id}", args, directory / "logs" / f"kubesim-{cluster.id}.log")
    return child, kubeconfig


def wait_until_serving(child: Child, timeout: float) -> str:
    """The simulator's URL once it prints ``listening on``; its kubeconfig is written by then."""
    return child.wait_for(LISTENING, timeout).group(1)


def startup_timeout(pods: int) -> float:
    """Generating objects is fast, but a busy two-core machine is slow: be generous."""
    return 60.0 + pods / 1000.0
