"""The ``pods`` collector: phase, addresses, node, readiness, owner, restarts and containers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from navigator_plugins.collectors.fields import ObjectMeta, resource

from navigator.plugin import Collector, Column, Resource, hookimpl


class OwnerReference(msgspec.Struct, gc=False):
    kind: Any = ""
    name: Any = ""
    controller: Any = None


class PodMeta(ObjectMeta):  # gc=False is inherited
    ownerReferences: list[OwnerReference] | None = None


class Container(msgspec.Struct, gc=False):
    name: Any = ""


class PodSpec(msgspec.Struct, gc=False):
    nodeName: Any = None
    containers: list[Container] | None = None


class PodCondition(msgspec.Struct, gc=False):
    type: Any = None
    status: Any = None


class ContainerStatus(msgspec.Struct, gc=False):
    restartCount: Any = None


class PodIP(msgspec.Struct, gc=False):
    ip: Any = None


class PodStatus(msgspec.Struct, gc=False):
    phase: Any = None
    podIP: Any = None
    podIPs: list[PodIP] | None = None
    hostIP: Any = None
    conditions: list[PodCondition] | None = None
    containerStatuses: list[ContainerStatus] | None = None
    startTime: Any = None


class Pod(msgspec.Struct, gc=False):
    """The fields of a Pod this collector reads; the decoder skips the rest."""

    metadata: PodMeta | None = None
    spec: PodSpec | None = None
    status: PodStatus | None = None


NO_SPEC = PodSpec()
NO_STATUS = PodStatus()


def _ready(status: PodStatus) -> bool:
    for condition in status.conditions or ():
        if condition.type == "Ready":
            return condition.status == "True"
    return False


def _owner(meta: PodMeta | None) -> dict[str, Any] | None:
    for ref in (meta.ownerReferences if meta is not None else None) or ():
        if ref.controller is True:
            return {"kind": ref.kind, "name": ref.name}
    return None


def _restarts(status: PodStatus) -> int:
    total = 0
    for container in status.containerStatuses or ():
        count = container.restartCount
        if isinstance(count, int) and not isinstance(count, bool):
            total += count
    return total


def to_resource(pod: Pod) -> Resource:
    spec = pod.spec or NO_SPEC
    status = pod.status or NO_STATUS
    data = {
        "phase": status.phase,
        "pod_ip": status.podIP,
        "pod_ips": [p.ip for p in status.podIPs or ()],
        "host_ip": status.hostIP,
        "node_name": spec.nodeName,
        "ready": _ready(status),
        "owner": _owner(pod.metadata),
        "restarts": _restarts(status),
        "containers": [c.name for c in spec.containers or ()],
        "start_time": status.startTime,
    }
    return resource("pods", pod.metadata, data)


#: As kubectl's (STATUS, READY, AGE; RESTARTS, IP and NODE with -o wide), from the fields above: with
#: CLUSTER and NAMESPACE in front, the default table of a typical pod stays within 80 columns.
COLUMNS = (
    Column("phase", ".phase", description="the pod's phase: Pending, Running, Succeeded, Failed, Unknown"),
    Column("ready", ".ready", type="boolean", description="the pod's Ready condition"),
    Column("age", ".start_time", type="date", description="since the pod started"),
    Column("restarts", ".restarts", wide=True, type="integer", description="container restarts, all containers"),
    Column("ip", ".pod_ip", wide=True),
    Column("node", ".node_name", wide=True),
)

COLLECTOR = Collector(
    name="pods", api_version="v1", plural="pods", to_resource=to_resource, item_type=Pod, columns=COLUMNS,
    short_names=("po",),
)  # fmt: skip


@hookimpl
def navigator_collectors() -> Iterable[Collector]:
    return [COLLECTOR]
