"""The query service: clusters with their status, and resources in pages, as ``navigator.v1`` messages.

Storage reads run on worker threads (never the storage writer thread), so a
query is not held up by a snapshot being written and the event loop stays free.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import TypeVar

import orjson
from google.protobuf.timestamp_pb2 import Timestamp

from navigator.interfaces import ClusterRecord, Holding, ResourceQuery
from navigator.manager.edge_session import SyncContext
from navigator.manager.status import cluster_status
from navigator.resource import StoredResource
from navigator.selectors import parse_selector
from navigator.v1 import query_pb2

#: Resources per ResourcePage message.
PAGE_SIZE = 500

T = TypeVar("T")
_DONE = object()


def _timestamp(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def cluster_info(
    record: ClusterRecord,
    counts: dict[str, int],
    holding: Holding | None,
    ctx: SyncContext,
    now: float,
) -> query_pb2.ClusterInfo:
    connected = holding is not None and holding.connected
    session = ctx.sessions.get(record.cluster)
    last_seen = record.last_seen
    if session is not None and session.last_seen:
        last_seen = datetime.fromtimestamp(session.last_seen, UTC)
    status = cluster_status(
        connected=connected,
        connected_since=holding.since if holding is not None else None,
        last_sync=record.last_sync.timestamp() if record.last_sync else None,
        sync_interval=record.sync_interval,
        now=now,
        config=ctx.config.status,
    )
    info = query_pb2.ClusterInfo(
        cluster=record.cluster,
        edge_id=holding.edge_id if holding is not None else record.edge_id,
        status=str(status),
        connected=connected,
        last_sync=_timestamp(record.last_sync),
        metadata=record.metadata,
        counts=counts,
        manager_id=holding.manager_id if holding is not None else record.manager_id,
        sync_interval_seconds=record.sync_interval,
        last_seen=_timestamp(last_seen),
    )
    for e in record.errors:
        info.errors.add(kind=e.kind, message=e.message, http_status=e.http_status, cached=e.cached, since=_timestamp(e.since))
    return info


def resource_record(item: StoredResource, as_json: bool = False) -> query_pb2.ResourceRecord:
    r = item.resource
    record = query_pb2.ResourceRecord(
        kind=r.kind,
        cluster=item.cluster,
        namespace=r.namespace,
        name=r.name,
        uid=r.uid,
        resource_version=r.resource_version,
        labels=r.labels,
    )
    if as_json:
        record.data_json = orjson.dumps(r.data)
    else:
        record.data.update(r.data)
    return record


def _pages(items: Iterable[StoredResource], size: int, as_json: bool) -> Iterator[query_pb2.ResourcePage]:
    page = query_pb2.ResourcePage()
    for item in items:
        page.resources.append(resource_record(item, as_json))
        if len(page.resources) >= size:
            yield page
            page = query_pb2.ResourcePage()
    if page.resources:
        yield page


async def iterate_in_thread(make: Callable[[], Iterator[T]], buffer: int = 4) -> AsyncIterator[T]:
    """Run a blocking iterator on a worker thread, with backpressure, stopping when the consumer leaves."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=buffer)
    stop = threading.Event()

    def put(item: object) -> bool:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while True:
            try:
                future.result(timeout=0.5)
                return True
            except concurrent.futures.TimeoutError:
                if stop.is_set():
                    future.cancel()
                    return False

    def produce() -> None:
        try:
            for item in make():
                if stop.is_set() or not put(item):
                    return
            put(_DONE)
        except BaseException as exc:
            put(exc)

    producer = loop.run_in_executor(None, produce)
    try:
        while True:
            item = await queue.get()
            if item is _DONE:
                break
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        await asyncio.shield(producer)


class QueryService:
    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx

    def _load(self, cluster: str) -> tuple[list[ClusterRecord], dict[str, dict[str, int]], dict[str, Holding]]:
        backend = self.ctx.backend
        if cluster:
            found = backend.get_cluster(cluster)
            records = [found] if found is not None else []
        else:
            records = backend.list_clusters()
        counts = {r.cluster: backend.counts(r.cluster) for r in records}
        return records, counts, dict(self.ctx.claims.holdings())

    async def list_clusters(self, request: query_pb2.ListClustersRequest) -> query_pb2.ListClustersResponse:
        records, counts, holdings = await asyncio.to_thread(self._load, request.cluster)
        # A kind some cluster has shows as 0 where it is missing, so every row has the same keys.
        known = {kind for per in counts.values() for kind in per}
        now = self.ctx.clock()
        response = query_pb2.ListClustersResponse()
        for record in records:
            full = dict.fromkeys(sorted(known), 0) | counts[record.cluster]
            response.clusters.append(cluster_info(record, full, holdings.get(record.cluster), self.ctx, now))
        return response

    async def list_resources(self, request: query_pb2.ListResourcesRequest) -> AsyncIterator[query_pb2.ResourcePage]:
        query = ResourceQuery(
            kind=request.kind or None,
            cluster=request.cluster or None,
            namespace=request.namespace or None,
            name=request.name or None,
            selector=parse_selector(request.label_selector),
            limit=request.limit or None,
        )
        backend = self.ctx.backend
        as_json = request.data_as_json
        async for page in iterate_in_thread(lambda: _pages(backend.query(query), PAGE_SIZE, as_json)):
            yield page
