"""The joined service view: one service in every cluster, its endpoints, and their pods' readiness.

Three queries (services by name, the namespace's endpoint slices, the
namespace's pods), joined on the manager's data: a slice belongs to the
service named in its ``service`` field, an endpoint to the pod in its
``target_ref``.
"""

from __future__ import annotations

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


def service_view(client: _Resources, name: str, namespace: str, cluster: str | None = None) -> list[dict[str, Any]]:
    """One entry per cluster that has the service, with ``endpoints`` joined to pods."""
    services = [resource_row(r, "services") for r in client.resources("services", cluster, namespace, name=name)]
    if not services:
        return []
    slices = [
        resource_row(r, "endpointslices")
        for r in client.resources("endpointslices", cluster, namespace)
        if r["data"].get("service") == name
    ]
    wanted = {
        (s["cluster"], (e.get("target_ref") or {}).get("name"))
        for s in slices
        for e in s["endpoints"] or []
        if (e.get("target_ref") or {}).get("kind") == "Pod"
    }
    pods: dict[tuple[str, Any], dict[str, Any]] = {}
    if wanted:
        for r in client.resources("pods", cluster, namespace):
            key = (r["cluster"], r["name"])
            if key in wanted:
                pods[key] = resource_row(r, "pods")
    views = []
    for svc in services:
        endpoints = []
        for s in (s for s in slices if s["cluster"] == svc["cluster"]):
            for e in s["endpoints"] or []:
                ref = e.get("target_ref") or {}
                pod = pods.get((svc["cluster"], ref.get("name"))) if ref.get("kind") == "Pod" else None
                endpoints.append(
                    {
                        "addresses": e.get("addresses") or [],
                        "ready": bool(e.get("ready")),
                        "serving": bool(e.get("serving")),
                        "terminating": bool(e.get("terminating")),
                        "node_name": e.get("node_name"),
                        "zone": e.get("zone"),
                        "slice": s["name"],
                        "pod": ref.get("name") if ref.get("kind") == "Pod" else None,
                        "pod_phase": pod["phase"] if pod else None,
                        "pod_ready": pod["ready"] if pod else None,
                    }
                )
        endpoints.sort(key=lambda e: (e["pod"] or "", e["addresses"]))
        views.append(
            {
                "cluster": svc["cluster"],
                "namespace": svc["namespace"],
                "name": svc["name"],
                "uid": svc["uid"],
                "resource_version": svc["resource_version"],
                "type": svc["type"],
                "cluster_ip": svc["cluster_ip"],
                "selector": svc["selector"],
                "ports": svc["ports"],
                "ready_endpoints": sum(1 for e in endpoints if e["ready"]),
                "endpoints": endpoints,
            }
        )
    return views
