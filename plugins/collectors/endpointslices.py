"""The ``endpointslices`` collector: which addresses back which service, and their conditions."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from navigator_plugins.collectors.fields import ObjectMeta, items, mapping, resource

from navigator.plugin import Collector, Column, Resource, hookimpl

SERVICE_NAME_LABEL = "kubernetes.io/service-name"


class EndpointConditions(msgspec.Struct, gc=False):
    ready: Any = None
    serving: Any = None
    terminating: Any = None


class ObjectReference(msgspec.Struct, gc=False):
    kind: Any = ""
    namespace: Any = ""
    name: Any = ""
    uid: Any = ""


class Endpoint(msgspec.Struct, gc=False):
    addresses: Any = None
    conditions: EndpointConditions | None = None
    nodeName: Any = None
    zone: Any = None
    targetRef: ObjectReference | None = None


class EndpointPort(msgspec.Struct, gc=False):
    name: Any = ""
    port: Any = None
    protocol: Any = "TCP"


class EndpointSlice(msgspec.Struct, gc=False):
    """The fields of an EndpointSlice this collector reads; the decoder skips the rest."""

    metadata: ObjectMeta | None = None
    addressType: Any = None
    endpoints: list[Endpoint] | None = None
    ports: list[EndpointPort] | None = None


NO_CONDITIONS = EndpointConditions()


def _target_ref(ref: ObjectReference | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {"kind": ref.kind, "namespace": ref.namespace, "name": ref.name, "uid": ref.uid}


def _endpoint(endpoint: Endpoint) -> dict[str, Any]:
    conditions = endpoint.conditions or NO_CONDITIONS
    # discovery/v1: a nil ready means ready, a nil serving means "as ready", a nil terminating means not.
    ready = True if conditions.ready is None else conditions.ready
    serving = conditions.serving
    terminating = conditions.terminating
    return {
        "addresses": items(endpoint.addresses),
        "ready": ready,
        "serving": ready if serving is None else serving,
        "terminating": False if terminating is None else terminating,
        "node_name": endpoint.nodeName,
        "zone": endpoint.zone,
        "target_ref": _target_ref(endpoint.targetRef),
    }


def _port(port: EndpointPort) -> dict[str, Any]:
    return {"name": port.name, "port": port.port, "protocol": port.protocol}


def to_resource(eps: EndpointSlice) -> Resource:
    labels = mapping(eps.metadata.labels) if eps.metadata is not None else {}
    data = {
        "service": labels.get(SERVICE_NAME_LABEL),
        "address_type": eps.addressType,
        "endpoints": [_endpoint(e) for e in eps.endpoints or ()],
        "ports": [_port(p) for p in eps.ports or ()],
    }
    return resource("endpointslices", eps.metadata, data)


COLLECTOR = Collector(
    name="endpointslices",
    api_version="discovery.k8s.io/v1",
    plural="endpointslices",
    to_resource=to_resource,
    item_type=EndpointSlice,
    # As kubectl's (ADDRESSTYPE, PORTS, ENDPOINTS), with how many endpoints are ready; SERVICE with -o wide.
    columns=(
        Column("addresstype", ".address_type"),
        Column("ready", ".endpoints", type="ready-count", description="ready endpoints / endpoints"),
        Column("ports", ".ports", type="ports"),
        Column("service", ".service", wide=True),
    ),
    short_names=("eps",),
)


@hookimpl
def navigator_collectors() -> Iterable[Collector]:
    return [COLLECTOR]
