"""The ``pods`` collector: phase, addresses, node, readiness, owner, restarts and containers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from navigator_plugins.collectors.fields import dicts, mapping, resource

from navigator.plugin import Collector, Resource, hookimpl


def _ready(status: dict[str, Any]) -> bool:
    for condition in dicts(status.get("conditions")):
        if condition.get("type") == "Ready":
            return condition.get("status") == "True"
    return False


def _owner(meta: dict[str, Any]) -> dict[str, Any] | None:
    for ref in dicts(meta.get("ownerReferences")):
        if ref.get("controller") is True:
            return {"kind": ref.get("kind", ""), "name": ref.get("name", "")}
    return None


def _restarts(status: dict[str, Any]) -> int:
    total = 0
    for container in dicts(status.get("containerStatuses")):
        count = container.get("restartCount")
        if isinstance(count, int) and not isinstance(count, bool):
            total += count
    return total


def to_resource(obj: dict[str, Any]) -> Resource:
    meta = mapping(obj.get("metadata"))
    spec = mapping(obj.get("spec"))
    status = mapping(obj.get("status"))
    data = {
        "phase": status.get("phase"),
        "pod_ip": status.get("podIP"),
        "pod_ips": [p.get("ip") for p in dicts(status.get("podIPs"))],
        "host_ip": status.get("hostIP"),
        "node_name": spec.get("nodeName"),
        "ready": _ready(status),
        "owner": _owner(meta),
        "restarts": _restarts(status),
        "containers": [c.get("name", "") for c in dicts(spec.get("containers"))],
        "start_time": status.get("startTime"),
    }
    return resource("pods", obj, data)


COLLECTOR = Collector(name="pods", api_version="v1", plural="pods", to_resource=to_resource)


@hookimpl
def navigator_collectors() -> Iterable[Collector]:
    return [COLLECTOR]
