"""The YAML files the demo and ``navigator local`` hand to ``navigator manager`` and ``navigator edge``.

They are ordinary configuration files written next to the logs, so a user can
read them, or restart a killed edge by hand with ``navigator edge --config``.
Each is validated by the same models the commands use before it is written.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from navigator.config import EdgeConfig, ManagerConfig
from navigator.config.loading import validate


@dataclass(slots=True)
class EdgePlan:
    """One edge: which cluster it claims and where its Kubernetes API is."""

    cluster: str
    kubeconfig: Path
    context: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    metrics_port: int | None = None


def manager_config(
    *,
    listen: str,
    database: Path,
    tokens: dict[str, str],
    metrics_port: int | None,
    grace_period: float = 10.0,
    http_listen: str | None = None,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "listen": listen,
        "transport": {"plugin": "grpc"},
        "storage": {"plugin": "sqlite", "options": {"path": str(database)}},
        "grace_period": grace_period,
        "auth": {"tokens": tokens},
        "metrics": {"host": "127.0.0.1", "port": metrics_port},
    }
    if http_listen is not None:
        data["http"] = {"listen": http_listen}  # the HTTP API and the web dashboard
    validate(ManagerConfig, data, "manager configuration")
    return data


def edge_config(plan: EdgePlan, *, manager: str, interval: float) -> dict[str, Any]:
    data: dict[str, Any] = {
        "cluster": {"id": plan.cluster, "metadata": plan.metadata},
        "kubernetes": {"kubeconfig": str(plan.kubeconfig), "context": plan.context},
        "manager": {"address": manager, "token": plan.token, "reconnect": {"initial": 0.5, "max": 5.0}},
        "transport": {"plugin": "grpc"},
        # The declared interval sets when a cluster counts as STALE: never relax beyond it.
        "sync": {"interval": interval, "adaptive": {"min_interval": min(interval, 2.0), "max_interval": interval}},
        "metrics": {"host": "127.0.0.1", "port": plan.metrics_port},
    }
    validate(EdgeConfig, data, f"edge configuration for {plan.cluster}")
    return data


def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
