"""The built-in collectors as they were before the fast path: plain code over dicts.

Kept only as the reference the typed collectors (``navigator_plugins.collectors``)
must match record for record; never used by Navigator itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from navigator.resource import Resource


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in items(value) if isinstance(v, dict)]


def string_map(value: Any) -> dict[str, str]:
    return {str(k): v if isinstance(v, str) else str(v) for k, v in mapping(value).items()}


def resource(kind: str, obj: Mapping[str, Any], data: dict[str, Any]) -> Resource:
    meta = mapping(obj.get("metadata"))
    return Resource(
        kind=kind,
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        resource_version=str(meta.get("resourceVersion") or ""),
        labels=string_map(meta.get("labels")),
        data=data,
    )


# --- services ------------------------------------------------------------------------------------


def _service_port(port: dict[str, Any]) -> dict[str, Any]:
    number = port.get("port")
    return {
        "name": port.get("name", ""),
        "port": number,
        "target_port": port.get("targetPort", number),
        "protocol": port.get("protocol", "TCP"),
    }


def service(obj: dict[str, Any]) -> Resource:
    spec = mapping(obj.get("spec"))
    status = mapping(obj.get("status"))
    data = {
        "type": spec.get("type", "ClusterIP"),
        "cluster_ip": spec.get("clusterIP"),
        "cluster_ips": items(spec.get("clusterIPs")),
        "selector": string_map(spec.get("selector")),
        "ports": [_service_port(p) for p in dicts(spec.get("ports"))],
        "external_ips": items(spec.get("externalIPs")),
        "load_balancer": dicts(mapping(status.get("loadBalancer")).get("ingress")),
    }
    return resource("services", obj, data)


# --- endpointslices ------------------------------------------------------------------------------


def _target_ref(ref: Any) -> dict[str, Any] | None:
    if not isinstance(ref, dict):
        return None
    return {key: ref.get(key, "") for key in ("kind", "namespace", "name", "uid")}


def _endpoint(endpoint: dict[str, Any]) -> dict[str, Any]:
    conditions = mapping(endpoint.get("conditions"))
    ready = conditions.get("ready")
    ready = True if ready is None else ready
    serving = conditions.get("serving")
    terminating = conditions.get("terminating")
    return {
        "addresses": items(endpoint.get("addresses")),
        "ready": ready,
        "serving": ready if serving is None else serving,
        "terminating": False if terminating is None else terminating,
        "node_name": endpoint.get("nodeName"),
        "zone": endpoint.get("zone"),
        "target_ref": _target_ref(endpoint.get("targetRef")),
    }


def _slice_port(port: dict[str, Any]) -> dict[str, Any]:
    return {"name": port.get("name", ""), "port": port.get("port"), "protocol": port.get("protocol", "TCP")}


def endpointslice(obj: dict[str, Any]) -> Resource:
    labels = mapping(mapping(obj.get("metadata")).get("labels"))
    data = {
        "service": labels.get("kubernetes.io/service-name"),
        "address_type": obj.get("addressType"),
        "endpoints": [_endpoint(e) for e in dicts(obj.get("endpoints"))],
        "ports": [_slice_port(p) for p in dicts(obj.get("ports"))],
    }
    return resource("endpointslices", obj, data)


# --- pods ----------------------------------------------------------------------------------------


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


def pod(obj: dict[str, Any]) -> Resource:
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


#: Collector name -> the dict code it replaced.
REFERENCE: dict[str, Callable[[dict[str, Any]], Resource]] = {
    "services": service,
    "endpointslices": endpointslice,
    "pods": pod,
}
