"""Run an edge in-process against a (simulated) cluster and a manager, for tests and the demo.

    async with run_test_edge(sim.kubeconfig_path, sim.context, mgr.address, "east") as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)

Settings default to test speed (sub-second intervals and backoffs); override any
key with nested mappings (``sync={"mode": "poll"}``) or dotted names
(``**{"manager.token": "s3cret"}``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pluggy

from navigator.config.edge import EdgeConfig
from navigator.edge.app import Edge


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if "." in key:
            head, _, rest = key.partition(".")
            child = base.get(head)
            base[head] = _merge(dict(child) if isinstance(child, dict) else {}, {rest: value})
        elif isinstance(value, Mapping) and isinstance(base.get(key), dict):
            base[key] = _merge(dict(base[key]), value)
        else:
            base[key] = value
    return base


def edge_config(
    kubeconfig: str | os.PathLike[str] | None,
    context: str | None,
    manager_address: str,
    cluster_id: str,
    **overrides: Any,
) -> EdgeConfig:
    """An EdgeConfig tuned for tests: fast syncs, fast retries, short timeouts."""
    values: dict[str, Any] = {
        "cluster": {"id": cluster_id, "metadata": {"environment": "test"}},
        "kubernetes": {
            "kubeconfig": str(kubeconfig) if kubeconfig is not None else None,
            "context": context,
            "request_timeout": 10,
            "retry_attempts": 3,
            "retry": {"initial": 0.02, "max": 0.2},
        },
        "manager": {
            "address": manager_address,
            "connect_timeout": 2,
            "ack_timeout": 10,
            "reconnect": {"initial": 0.05, "max": 0.5},
        },
        "sync": {
            "interval": 0.5,
            "adaptive": {"min_interval": 0.1, "max_interval": 60},
            "full_resync_interval": 60,
        },
    }
    return EdgeConfig.model_validate(_merge(values, overrides))


@contextlib.asynccontextmanager
async def run_test_edge(
    kubeconfig: str | os.PathLike[str] | None,
    context: str | None,
    manager_address: str,
    cluster_id: str,
    *,
    pm: pluggy.PluginManager | None = None,
    **overrides: Any,
) -> AsyncIterator[Edge]:
    """A started ``Edge``; stopped (stream closed) on exit. ``pm`` supplies extra (test) plugins."""
    edge = Edge(edge_config(kubeconfig, context, manager_address, cluster_id, **overrides), pm)
    await edge.start()
    try:
        yield edge
    finally:
        await edge.stop()
