"""A bare sync-protocol client for tests and benchmarks: sends exactly the messages you build.

Unlike the real edge it has no collectors, retries or chunking logic, so a
test can send malformed, out-of-order or hostile messages and watch the
manager's answer::

    async with RawEdge(mgr.address, token="s3cret") as edge:
        accept = await edge.identify("east", "edge-1")
        ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("web-1")]}))
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import orjson

from navigator.v1 import sync_pb2, sync_pb2_grpc


def resource(
    kind: str,
    name: str,
    namespace: str = "default",
    *,
    uid: str | None = None,
    resource_version: str = "1",
    labels: Mapping[str, str] | None = None,
    data: Mapping[str, Any] | None = None,
    payload: bytes | None = None,
) -> sync_pb2.Resource:
    """A wire Resource; ``data`` is encoded as JSON (identify with the ``json`` serializer)."""
    return sync_pb2.Resource(
        kind=kind,
        namespace=namespace,
        name=name,
        uid=uid if uid is not None else str(uuid.uuid5(uuid.NAMESPACE_URL, f"{kind}/{namespace}/{name}")),
        resource_version=resource_version,
        labels=dict(labels or {}),
        payload=payload if payload is not None else orjson.dumps(dict(data or {})),
    )


def pod(name: str, namespace: str = "default", **kwargs: Any) -> sync_pb2.Resource:
    data = {"phase": "Running", "pod_ip": "10.0.0.1", "node_name": "node-1", "ready": True}
    data.update(kwargs.pop("data", None) or {})
    return resource("pods", name, namespace, data=data, **kwargs)


def service(name: str, namespace: str = "shop", **kwargs: Any) -> sync_pb2.Resource:
    """A ClusterIP Service selecting ``app=NAME``, port 80 to 8080, as the services collector records one."""
    data = {
        "type": "ClusterIP",
        "cluster_ip": "10.96.0.10",
        "selector": {"app": name},
        "ports": [{"name": "http", "port": 80, "target_port": 8080, "protocol": "TCP"}],
    }
    return resource("services", name, namespace, labels={"app": name}, data=data, **kwargs)


def endpointslice(service_name: str, pods: Sequence[tuple[str, str, bool]], namespace: str = "shop") -> sync_pb2.Resource:
    """The EndpointSlice of ``service_name`` with one endpoint per (pod name, IP, ready), as the collector records it."""
    endpoints = [
        {
            "addresses": [ip], "ready": ready, "serving": ready, "terminating": False, "node_name": "node-1",
            "zone": "a", "target_ref": {"kind": "Pod", "namespace": namespace, "name": name, "uid": f"uid-{name}"},
        }
        for name, ip, ready in pods
    ]  # fmt: skip
    data = {
        "service": service_name,
        "address_type": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }
    labels = {"kubernetes.io/service-name": service_name}
    return resource("endpointslices", f"{service_name}-abcde", namespace, labels=labels, data=data)


def _state(cluster: str, edge_id: str, sequence: int, state_type: int, timestamp: float | None) -> sync_pb2.ClusterState:
    state = sync_pb2.ClusterState(cluster_id=cluster, edge_id=edge_id, sequence=sequence, type=state_type)  # type: ignore[arg-type]
    state.timestamp.FromNanoseconds(int((timestamp if timestamp is not None else time.time()) * 1e9))
    return state


def full_state(
    cluster: str,
    edge_id: str,
    sequence: int,
    resources: Mapping[str, Sequence[sync_pb2.Resource]],
    *,
    cached: Mapping[str, Sequence[sync_pb2.Resource]] | None = None,
    errors: Sequence[sync_pb2.KindError] = (),
    timestamp: float | None = None,
    counts: bool = True,
) -> sync_pb2.ClusterState:
    """A FULL state: ``resources`` maps each collected kind to its complete set."""
    state = _state(cluster, edge_id, sequence, sync_pb2.STATE_TYPE_FULL, timestamp)
    state.kinds.extend(resources)
    state.cached_kinds.extend(cached or {})
    state.errors.extend(errors)
    for group in (resources, cached or {}):
        for kind, items in group.items():
            state.resources.extend(items)
            if counts:
                state.counts[kind] = len(items)
    return state


def delta_state(
    cluster: str,
    edge_id: str,
    sequence: int,
    upserts: Sequence[sync_pb2.Resource] = (),
    deletions: Sequence[sync_pb2.ResourceKey] = (),
    *,
    errors: Sequence[sync_pb2.KindError] = (),
    timestamp: float | None = None,
) -> sync_pb2.ClusterState:
    state = _state(cluster, edge_id, sequence, sync_pb2.STATE_TYPE_DELTA, timestamp)
    state.resources.extend(upserts)
    state.deletions.extend(deletions)
    state.errors.extend(errors)
    return state


#: What only the last chunk of an open set carries (docs/protocol.md, "Open chunk sets").
OPEN_SET_HEADER = ("kinds", "cached_kinds", "errors", "counts", "deletions", "against_versions")


def chunked(state: sync_pb2.ClusterState, per_chunk: int, open_set: bool = False) -> list[sync_pb2.ClusterState]:
    """Split a FULL state into a chunk set starting at ``state.sequence`` (consecutive sequences):
    a closed set, or an open one (``count`` 0, the header only on the chunk marked ``last``)."""
    items = list(state.resources)
    groups = [items[i : i + per_chunk] for i in range(0, len(items), per_chunk)] or [[]]
    chunks = []
    for index, group in enumerate(groups):
        chunk = sync_pb2.ClusterState()
        chunk.CopyFrom(state)
        chunk.ClearField("resources")
        chunk.resources.extend(group)
        chunk.sequence = state.sequence + index
        chunk.chunk.snapshot_sequence = state.sequence
        chunk.chunk.index = index
        if not open_set:
            chunk.chunk.count = len(groups)
        elif index == len(groups) - 1:
            chunk.chunk.last = True
        else:
            for name in OPEN_SET_HEADER:
                chunk.ClearField(name)  # type: ignore[arg-type]
        chunks.append(chunk)
    return chunks


def identify(
    cluster: str,
    edge_id: str,
    *,
    metadata: Mapping[str, str] | None = None,
    serializers: Sequence[str] = ("json",),
    sync_interval: float = 30.0,
    token: str = "",
    kinds: Sequence[str] = ("services", "endpointslices", "pods"),
    protocol_version: int = 1,
    want_versions: bool = False,
    instance_key: bytes = b"",
) -> sync_pb2.EdgeMessage:
    return sync_pb2.EdgeMessage(
        identify=sync_pb2.Identify(
            protocol_version=protocol_version,
            cluster_id=cluster,
            edge_id=edge_id,
            metadata=dict(metadata or {}),
            token=token,
            serializers=list(serializers),
            sync_interval_seconds=sync_interval,
            kinds=list(kinds),
            want_versions=want_versions,
            instance_key=instance_key,
        )
    )


class RawEdge:
    """One ``Sync/Connect`` call over real gRPC."""

    def __init__(
        self,
        address: str,
        token: str | None = None,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        opts = [("grpc.max_send_message_length", 256 * 1024 * 1024), *options]
        if credentials is None:
            self.channel = grpc.aio.insecure_channel(address, options=opts)
        else:
            self.channel = grpc.aio.secure_channel(address, credentials, options=opts)
        metadata = (("authorization", f"Bearer {token}"),) if token else None
        self.call = sync_pb2_grpc.SyncStub(self.channel).Connect(metadata=metadata)

    async def __aenter__(self) -> RawEdge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def send(self, message: sync_pb2.EdgeMessage) -> bool:
        """``False`` if the call has already ended (``status()`` says why)."""
        try:
            await self.call.write(message)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
            return False
        return True

    async def recv(self, timeout: float = 10.0) -> sync_pb2.ManagerMessage | None:
        """The next message, or ``None`` once the manager ended the call."""
        try:
            message = await asyncio.wait_for(self.call.read(), timeout)
        except grpc.aio.AioRpcError:
            return None
        return None if message is grpc.aio.EOF else message

    async def identify(self, cluster: str, edge_id: str, **kwargs: Any) -> sync_pb2.ManagerMessage | None:
        await self.send(identify(cluster, edge_id, **kwargs))
        return await self.recv()

    async def send_state(self, state: sync_pb2.ClusterState, timeout: float = 30.0) -> sync_pb2.Ack:
        await self.send(sync_pb2.EdgeMessage(state=state))
        answer = await self.recv(timeout)
        if answer is None or answer.WhichOneof("body") != "ack":
            raise AssertionError(f"expected an Ack for sequence {state.sequence}, got {answer}")
        return answer.ack

    async def heartbeat(self) -> None:
        message = sync_pb2.EdgeMessage(heartbeat=sync_pb2.Heartbeat())
        message.heartbeat.time.GetCurrentTime()
        await self.send(message)

    async def status(self) -> tuple[grpc.StatusCode, str]:
        """The call's final status (waits for the manager to end it)."""
        return await self.call.code(), await self.call.details()

    async def close(self) -> None:
        self.call.cancel()
        await self.channel.close()


class RawEdges:
    """Opens raw streams to one manager address and closes them all at the end (a fixture's job)."""

    def __init__(self, address: str, tokens: Mapping[str, str] | None = None) -> None:
        self.address = address
        self.tokens = dict(tokens or {})
        self.opened: list[RawEdge] = []

    def connect(self, token: str | None = None) -> RawEdge:
        edge = RawEdge(self.address, token)
        self.opened.append(edge)
        return edge

    async def claimed(self, cluster: str = "east", edge_id: str = "edge-1", **kwargs: Any) -> RawEdge:
        """An edge that identified with the cluster's token and was accepted."""
        edge = self.connect(self.tokens.get(cluster))
        answer = await edge.identify(cluster, edge_id, **kwargs)
        if answer is None or answer.WhichOneof("body") != "accept":
            raise AssertionError(f"expected Accept for {cluster}/{edge_id}, got {answer}")
        return edge

    async def close(self) -> None:
        for edge in self.opened:
            await edge.close()
        self.opened.clear()
