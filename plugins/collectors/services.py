"""The ``services`` collector: type, cluster IPs, selector, ports, external and load-balancer addresses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from navigator_plugins.collectors.fields import dicts, items, mapping, resource, string_map

from navigator.plugin import Collector, Resource, hookimpl


def _port(port: dict[str, Any]) -> dict[str, Any]:
    number = port.get("port")
    return {
        "name": port.get("name", ""),
        "port": number,
        # The API server defaults these two; apply the same defaults to objects that skipped defaulting.
        "target_port": port.get("targetPort", number),
        "protocol": port.get("protocol", "TCP"),
    }


def to_resource(obj: dict[str, Any]) -> Resource:
    spec = mapping(obj.get("spec"))
    status = mapping(obj.get("status"))
    data = {
        "type": spec.get("type", "ClusterIP"),
        "cluster_ip": spec.get("clusterIP"),
        "cluster_ips": items(spec.get("clusterIPs")),
        "selector": string_map(spec.get("selector")),
        "ports": [_port(p) for p in dicts(spec.get("ports"))],
        "external_ips": items(spec.get("externalIPs")),
        "load_balancer": dicts(mapping(status.get("loadBalancer")).get("ingress")),
    }
    return resource("services", obj, data)


COLLECTOR = Collector(name="services", api_version="v1", plural="services", to_resource=to_resource)


@hookimpl
def navigator_collectors() -> Iterable[Collector]:
    return [COLLECTOR]
