"""Server-side printing (``meta.k8s.io/v1 Table``), which plain ``kubectl get`` asks for."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from navigator.client.times import human_duration

from .resources import ResourceType

Row = Callable[[dict[str, Any], float], list[Any]]

NAME_COL = {"name": "Name", "type": "string", "format": "name", "priority": 0,
            "description": "Name must be unique within a namespace."}


def _col(name: str, type_: str = "string", priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": name, "priority": priority}


def age(ts: Any, now: float) -> str:
    if not isinstance(ts, str) or not ts:
        return "<unknown>"
    try:
        t = datetime.fromisoformat(ts)
    except ValueError:
        return "<unknown>"
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return human_duration(now - t.timestamp())


def _meta(o: dict[str, Any]) -> dict[str, Any]:
    m = o.get("metadata")
    return m if isinstance(m, dict) else {}


def _pod_row(o: dict[str, Any], now: float) -> list[Any]:
    meta, spec, status = _meta(o), o.get("spec") or {}, o.get("status") or {}
    containers = spec.get("containers") or []
    cstats = status.get("containerStatuses") or []
    reason = status.get("reason") or status.get("phase") or ""
    restarts, ready = 0, 0
    last_restart = ""
    for cs in cstats:
        restarts += int(cs.get("restartCount") or 0)
        finished = ((cs.get("lastState") or {}).get("terminated") or {}).get("finishedAt")
        if isinstance(finished, str) and finished > last_restart:
            last_restart = finished
        state = cs.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            reason = state["terminated"].get("reason") or "Completed"
        if cs.get("ready"):
            ready += 1
    if meta.get("deletionTimestamp"):
        reason = "Terminating"
    nominated = status.get("nominatedNodeName") or "<none>"
    gates = spec.get("readinessGates") or []
    restarts_cell = str(restarts)
    if restarts and last_restart:
        restarts_cell += f" ({age(last_restart, now)} ago)"
    return [meta.get("name", ""), f"{ready}/{len(containers)}", reason, restarts_cell,
            age(meta.get("creationTimestamp"), now), status.get("podIP") or "<none>",
            spec.get("nodeName") or "<none>", nominated, f"{len(gates)}" if gates else "<none>"]


def _ports(ports: list[dict[str, Any]]) -> str:
    out = []
    for p in ports:
        s = f"{p.get('port')}"
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _svc_row(o: dict[str, Any], now: float) -> list[Any]:
    meta, spec = _meta(o), o.get("spec") or {}
    ext = ",".join(spec.get("externalIPs") or []) or "<none>"
    if spec.get("type") == "LoadBalancer":
        ing = ((o.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        ext = ",".join(i.get("ip") or i.get("hostname") or "" for i in ing) or "<pending>"
    sel = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items())) or "<none>"
    return [meta.get("name", ""), spec.get("type", "ClusterIP"), spec.get("clusterIP") or "<none>", ext,
            _ports(spec.get("ports") or []), age(meta.get("creationTimestamp"), now), sel]


def _node_row(o: dict[str, Any], now: float) -> list[Any]:
    meta, spec, status = _meta(o), o.get("spec") or {}, o.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    st = "Ready" if ready and ready.get("status") == "True" else "NotReady" if ready else "Unknown"
    if spec.get("unschedulable"):
        st += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in (meta.get("labels") or {})
                   if k.startswith("node-role.kubernetes.io/"))
    info = status.get("nodeInfo") or {}
    addrs = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    return [meta.get("name", ""), st, ",".join(roles) or "<none>", age(meta.get("creationTimestamp"), now),
            info.get("kubeletVersion", ""), addrs.get("InternalIP") or "<none>", addrs.get("ExternalIP") or "<none>",
            info.get("osImage", ""), info.get("kernelVersion", ""), info.get("containerRuntimeVersion", "")]


def _ns_row(o: dict[str, Any], now: float) -> list[Any]:
    meta = _meta(o)
    return [meta.get("name", ""), (o.get("status") or {}).get("phase", ""), age(meta.get("creationTimestamp"), now)]


def _cm_row(o: dict[str, Any], now: float) -> list[Any]:
    meta = _meta(o)
    n = len(o.get("data") or {}) + len(o.get("binaryData") or {})
    return [meta.get("name", ""), n, age(meta.get("creationTimestamp"), now)]


def _eps_row(o: dict[str, Any], now: float) -> list[Any]:
    meta = _meta(o)
    ports = ",".join(str(p.get("port")) for p in o.get("ports") or []) or "<unset>"
    addrs = [a for ep in o.get("endpoints") or [] for a in ep.get("addresses") or []]
    shown = ",".join(addrs[:3]) + (f" + {len(addrs) - 3} more..." if len(addrs) > 3 else "")
    return [meta.get("name", ""), o.get("addressType", ""), ports, shown or "<unset>",
            age(meta.get("creationTimestamp"), now)]


def _generic_row(o: dict[str, Any], now: float) -> list[Any]:
    meta = _meta(o)
    return [meta.get("name", ""), age(meta.get("creationTimestamp"), now)]


PRINTERS: dict[tuple[str, str], tuple[list[dict[str, Any]], Row]] = {
    ("", "pods"): ([NAME_COL, _col("Ready"), _col("Status"), _col("Restarts"), _col("Age"),
                    _col("IP", priority=1), _col("Node", priority=1), _col("Nominated Node", priority=1),
                    _col("Readiness Gates", priority=1)], _pod_row),
    ("", "services"): ([NAME_COL, _col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"),
                        _col("Age"), _col("Selector", priority=1)], _svc_row),
    ("", "nodes"): ([NAME_COL, _col("Status"), _col("Roles"), _col("Age"), _col("Version"),
                     _col("Internal-IP", priority=1), _col("External-IP", priority=1), _col("OS-Image", priority=1),
                     _col("Kernel-Version", priority=1), _col("Container-Runtime", priority=1)], _node_row),
    ("", "namespaces"): ([NAME_COL, _col("Status"), _col("Age")], _ns_row),
    ("", "configmaps"): ([NAME_COL, _col("Data", "integer"), _col("Age")], _cm_row),
    ("discovery.k8s.io", "endpointslices"): ([NAME_COL, _col("AddressType"), _col("Ports"), _col("Endpoints"),
                                              _col("Age")], _eps_row),
}
GENERIC = ([NAME_COL, _col("Age", "date")], _generic_row)


def table(
    rt: ResourceType,
    bodies: list[bytes],
    *,
    version: str = "v1",
    include: str = "Metadata",
    list_meta: dict[str, Any] | None = None,
    columns: bool = True,
) -> bytes:
    """A Table document from stored object bytes.

    Each row is encoded as soon as it is built so no parsed object outlives its row: keeping
    thousands of parsed pods alive makes the cyclic GC, not the parsing, the cost of a page.
    """
    cols, row = PRINTERS.get((rt.group, rt.plural), GENERIC)
    now = time.time()
    partial = b'{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/' + version.encode() + b'","metadata":'
    rows = []
    for body in bodies:
        full = rt.full(body)
        o = orjson.loads(full)
        cells = orjson.dumps(row(o, now))
        if include == "Object":
            rows.append(b'{"cells":' + cells + b',"object":' + full + b"}")
        elif include == "None":
            rows.append(b'{"cells":' + cells + b"}")
        else:
            rows.append(b'{"cells":' + cells + b',"object":' + partial + orjson.dumps(_meta(o)) + b"}}")
    head = {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}",
            "metadata": list_meta if list_meta is not None else {}, "columnDefinitions": cols if columns else None}
    return orjson.dumps(head)[:-1] + b',"rows":[' + b",".join(rows) + b"]}"
