"""The ``services`` collector: type, cluster IPs, selector, ports, external and load-balancer addresses."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from navigator_plugins.collectors.fields import ObjectMeta, dicts, items, resource, string_map

from navigator.plugin import Collector, Column, Resource, hookimpl


class ServicePort(msgspec.Struct, gc=False):
    name: Any = ""
    port: Any = None
    #: UNSET when absent: it then defaults to ``port``, as the API server would.
    targetPort: Any = msgspec.UNSET
    protocol: Any = "TCP"


class ServiceSpec(msgspec.Struct, gc=False):
    type: Any = "ClusterIP"
    clusterIP: Any = None
    clusterIPs: Any = None
    selector: Any = None
    ports: list[ServicePort] | None = None
    externalIPs: Any = None


class LoadBalancerStatus(msgspec.Struct, gc=False):
    ingress: Any = None


class ServiceStatus(msgspec.Struct, gc=False):
    loadBalancer: LoadBalancerStatus | None = None


class Service(msgspec.Struct, gc=False):
    """The fields of a Service this collector reads; the decoder skips the rest."""

    metadata: ObjectMeta | None = None
    spec: ServiceSpec | None = None
    status: ServiceStatus | None = None


NO_SPEC = ServiceSpec()


def _port(port: ServicePort) -> dict[str, Any]:
    number = port.port
    return {
        "name": port.name,
        "port": number,
        # The API server defaults these two; apply the same defaults to objects that skipped defaulting.
        "target_port": number if port.targetPort is msgspec.UNSET else port.targetPort,
        "protocol": port.protocol,
    }


def to_resource(service: Service) -> Resource:
    spec = service.spec or NO_SPEC
    balancer = service.status.loadBalancer if service.status is not None else None
    data = {
        "type": spec.type,
        "cluster_ip": spec.clusterIP,
        "cluster_ips": items(spec.clusterIPs),
        "selector": string_map(spec.selector),
        "ports": [_port(p) for p in spec.ports or ()],
        "external_ips": items(spec.externalIPs),
        "load_balancer": dicts(balancer.ingress if balancer is not None else None),
    }
    return resource("services", service.metadata, data)


#: As kubectl's (TYPE, CLUSTER-IP, PORT(S); EXTERNAL-IP and SELECTOR with -o wide).
COLUMNS = (
    Column("type", ".type"),
    Column("cluster-ip", ".cluster_ip"),
    Column("ports", ".ports", type="ports", description="port/protocol, and →target port where it differs"),
    Column("external-ip", ".external_ips", wide=True),
    Column("selector", ".selector", wide=True),
)

COLLECTOR = Collector(
    name="services", api_version="v1", plural="services", to_resource=to_resource, item_type=Service,
    columns=COLUMNS, short_names=("svc",),
)  # fmt: skip


@hookimpl
def navigator_collectors() -> Iterable[Collector]:
    return [COLLECTOR]
