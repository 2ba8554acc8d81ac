"""The joined service view: one service in every cluster, its endpoints, and their pods' readiness.

Three queries (services by name, the namespace's endpoint slices, the
namespace's pods), joined on the manager's data: a slice belongs to the
service named in its ``service`` field, an endpoint to the pod in its
``target_ref``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from navigator.client.rows import resource_row


class _Resources(Protocol):
    def resources(
        self,
        kind: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        limit: int | None = None,
    ) -> Any: ...


def service_view(
    client: _Resources, name: str, namespace: str | None, cluster: str | None = None
) -> list[dict[str, Any]]:
    """One entry per cluster (and namespace: ``None`` looks in every one) that has the service, with
    ``endpoints`` joined to pods."""
    services = [resource_row(r, "services") for r in client.resources("services", cluster, namespace, name=name)]
    if not services:
        return []
    # The namespaces the service is in (one, unless none was given): only theirs are read.
    namespaces = sorted({svc["namespace"] for svc in services})
    slices = [
        resource_row(r, "endpointslices")
        for ns in namespaces
        for r in client.resources("endpointslices", cluster, ns)
        if r["data"].get("service") == name
    ]
    wanted = {
        (s["cluster"], s["namespace"], (e.get("target_ref") or {}).get("name"))
        for s in slices
        for e in s.get("endpoints") or []
        if (e.get("target_ref") or {}).get("kind") == "Pod"
    }
    pods: dict[tuple[str, str, Any], dict[str, Any]] = {}
    for ns in sorted({key[1] for key in wanted}):
        for r in client.resources("pods", cluster, ns):
            key = (r["cluster"], r["namespace"], r["name"])
            if key in wanted:
                pods[key] = resource_row(r, "pods")
    views = []
    for svc in services:
        cluster_, namespace_ = svc["cluster"], svc["namespace"]
        mine = [s for s in slices if (s["cluster"], s["namespace"]) == (cluster_, namespace_)]
        views.append(service_entry(svc, endpoint_rows(mine, functools.partial(_pod, pods, cluster_, namespace_))))
    return views


def _pod(pods: dict[tuple[str, str, Any], dict[str, Any]], cluster: str, namespace: str, name: str) -> dict[str, Any] | None:
    return pods.get((cluster, namespace, name))


def endpoint_rows(
    slices: Iterable[dict[str, Any]], pod_of: Callable[[str], dict[str, Any] | None]
) -> list[dict[str, Any]]:
    """Every endpoint of ``slices`` (one service's, in one cluster) with its pod's phase and readiness
    (``pod_of(name)``: the pod's row, or ``None``), in (pod, addresses) order."""
    endpoints = []
    for s in slices:
        for e in s.get("endpoints") or []:
            ref = e.get("target_ref") or {}
            name = ref.get("name") if ref.get("kind") == "Pod" else None
            pod = pod_of(name) if name else None
            endpoints.append(
                {
                    "addresses": e.get("addresses") or [],
                    "ready": bool(e.get("ready")),
                    "serving": bool(e.get("serving")),
                    "terminating": bool(e.get("terminating")),
                    "node_name": e.get("node_name"),
                    "zone": e.get("zone"),
                    "slice": s["name"],
                    "pod": name,
                    "pod_phase": pod.get("phase") if pod else None,
                    "pod_ready": pod.get("ready") if pod else None,
                }
            )
    endpoints.sort(key=lambda e: (e["pod"] or "", e["addresses"]))
    return endpoints


def service_entry(svc: dict[str, Any], endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    """One cluster's entry of the joined view: the service's row and its joined ``endpoints``."""
    return {
        "cluster": svc["cluster"],
        "namespace": svc["namespace"],
        "name": svc["name"],
        "uid": svc["uid"],
        "resource_version": svc["resource_version"],
        "type": svc.get("type"),
        "cluster_ip": svc.get("cluster_ip"),
        "selector": svc.get("selector"),
        "ports": svc.get("ports"),
        "ready_endpoints": sum(1 for e in endpoints if e["ready"]),
        "endpoints": endpoints,
    }
