"""The ``endpointslices`` collector: which addresses back which service, and their conditions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from navigator_plugins.collectors.fields import dicts, items, mapping, resource

from navigator.plugin import Collector, Resource, hookimpl

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _target_ref(ref: Any) -> dict[str, Any] | None:
    if not isinstance(ref, dict):
        return None
    return {key: ref.get(key, "") for key in ("kind", "namespace", "name", "uid")}


def _endpoint(endpoint: dict[str, Any]) -> dict[str, Any]:
    conditions = mapping(endpoint.get("conditions"))
    # discovery/v1: a nil ready means ready, a nil serving means "as ready", a nil terminating means not.
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


def _port(port: dict[str, Any]) -> dict[str, Any]:
    return {"name": port.get("name", ""), "port": port.get("port"), "protocol": port.get("protocol", "TCP")}


def to_resource(obj: dict[str, Any]) -> Resource:
    labels = mapping(mapping(obj.get("metadata")).get("labels"))
    data = {
        "service": labels.get(SERVICE_NAME_LABEL),
        "address_type": obj.get("addressType"),
        "endpoints": [_endpoint(e) for e in dicts(obj.get("endpoints"))],
        "ports": [_port(p) for p in dicts(obj.get("ports"))],
    }
    return resource("endpointslices", obj, data)


COLLECTOR = Collector(
    name="endpointslices", api_version="discovery.k8s.io/v1", plural="endpointslices", to_resource=to_resource
)


@hookimpl
def navigator_collectors() -> Iterable[Collector]:
    return [COLLECTOR]
