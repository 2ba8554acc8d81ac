"""The query service: clusters with their status, resources, changes and diffs in pages, as ``navigator.v1`` messages.

Storage reads run on worker threads (never the storage writer thread), so a
query is not held up by a snapshot being written and the event loop stays free.
Questions about the past (``at``, ``ListChanges``, ``Diff``) are answered from
the history the backend keeps, within ``history.retention``; a question the
manager cannot answer is refused with ``QueryRefused``, saying why.

Every answer is cut to what the asking ``Reader`` may see: a reader limited to some
clusters gets only theirs (asking for another one is PERMISSION_DENIED) and never an
edge id, which, with a cluster's token, is what an edge reconnecting presents.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import itertools
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from google.protobuf.timestamp_pb2 import Timestamp
from loguru import logger

from navigator.interfaces import (
    ClusterRecord,
    Collector,
    Holding,
    KindErrorRecord,
    QueryRefused,
    ResourceQuery,
    StorageBackend,
    StorageError,
)
from navigator.interfaces.storage import HistoryQuery
from navigator.manager.edge_session import SyncContext
from navigator.manager.readers import Reader
from navigator.manager.reconciler import changed_fields
from navigator.manager.status import cluster_verdict, verdict_at
from navigator.resource import Change, StoredResource
from navigator.selectors import LabelSelector, SelectorError, parse_selector
from navigator.v1 import query_pb2

#: Resources (changes, diff entries) per page message.
PAGE_SIZE = 500

#: Resources per page of ListResources after its first page (of ``PAGE_SIZE``, for a quick first row):
#: every page costs both ends a hand-over between threads, which fewer, bigger pages save.
LATER_PAGE_SIZE = 2000

#: A page of resources is cut once its objects' JSON reaches this many bytes, so pages of big
#: objects (150 KiB pods) stay far below the message size limits of both ends (64 MiB by default).
PAGE_BYTES = 4 * 1024 * 1024

#: What a record costs on the wire besides its labels and data: names, uid, version, framing.
RECORD_BYTES = 200

#: How far ahead of the manager's clock a requested time may be (clients' clocks drift a little).
CLOCK_SKEW = 5.0

#: What a question about the past gets when the manager keeps no history.
HISTORY_OFF = "history is off (history.retention: off in the manager config)"

T = TypeVar("T")
_DONE = object()


#: A limit at least this large means no limit: storage counts in signed 64-bit integers.
NO_LIMIT_FROM = 2**63 - 1


def _limit(requested: int) -> int | None:
    """``None`` (no limit) for 0 and for limits no store could reach; else the limit itself."""
    return requested if 0 < requested < NO_LIMIT_FROM else None


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
    show_edge: bool = True,
) -> query_pb2.ClusterInfo:
    """The cluster now: its stored record, plus what only the manager's memory holds (what the connected
    edge reports in its deltas, a storage failure), which also decide the status and its reason."""
    connected = holding is not None and holding.connected
    session = ctx.sessions.get(record.cluster)
    last_seen = record.last_seen
    if session is not None and session.last_seen:
        last_seen = datetime.fromtimestamp(session.last_seen, UTC)
    errors = current_errors(record, session.reported if session is not None else ())
    verdict = cluster_verdict(
        connected=connected,
        connected_since=holding.since if holding is not None else None,
        last_sync=record.last_sync.timestamp() if record.last_sync else None,
        sync_interval=record.sync_interval,
        now=now,
        config=ctx.config.status,
        fresh_as_of=record.fresh_as_of.timestamp() if record.fresh_as_of else None,
        errors=errors,
        kinds=session.kinds if session is not None else (),
        storage=ctx.storage_failures.get(record.cluster),
    )
    info = query_pb2.ClusterInfo(
        cluster=record.cluster,
        edge_id=(holding.edge_id if holding is not None else record.edge_id) if show_edge else "",
        status=str(verdict.status),
        status_reason=verdict.reason,
        connected=connected,
        last_sync=_timestamp(record.last_sync),
        metadata=record.metadata,
        counts=counts,
        manager_id=holding.manager_id if holding is not None else record.manager_id,
        sync_interval_seconds=record.sync_interval,
        last_seen=_timestamp(last_seen),
    )
    _add_freshness(info, record)
    _add_errors(info, errors)
    return info


def current_errors(record: ClusterRecord, reported: Iterable[KindErrorRecord]) -> list[KindErrorRecord]:
    """The stored errors, with what the edge reports now in its deltas in place of a stored one of the same kind."""
    merged = {e.kind: e for e in record.errors}
    merged.update((e.kind, e) for e in reported)
    return [merged[kind] for kind in sorted(merged)]


def cluster_info_at(
    record: ClusterRecord, counts: dict[str, int], at: datetime, ctx: SyncContext, show_edge: bool = True
) -> query_pb2.ClusterInfo:
    """A cluster as it was at ``at``: its record kept then, status computed for that time, never connected."""
    verdict = verdict_at(
        last_sync=record.last_sync.timestamp() if record.last_sync else None,
        sync_interval=record.sync_interval,
        at=at.timestamp(),
        config=ctx.config.status,
        fresh_as_of=record.fresh_as_of.timestamp() if record.fresh_as_of else None,
        errors=record.errors,
    )
    info = query_pb2.ClusterInfo(
        cluster=record.cluster,
        edge_id=record.edge_id if show_edge else "",
        status=str(verdict.status),
        status_reason=verdict.reason,
        connected=False,
        last_sync=_timestamp(record.last_sync),
        metadata=record.metadata,
        counts=counts,
        manager_id=record.manager_id,
        sync_interval_seconds=record.sync_interval,
        last_seen=_timestamp(record.last_seen),
    )
    _add_freshness(info, record)
    _add_errors(info, record.errors)
    return info


def _add_freshness(info: query_pb2.ClusterInfo, record: ClusterRecord) -> None:
    """``fresh_as_of`` unset and ``lag_seconds`` 0 when unknown (nothing applied since the upgrade)."""
    if record.fresh_as_of is not None:
        info.fresh_as_of.FromDatetime(record.fresh_as_of)
    if record.lag is not None:
        info.lag_seconds = record.lag


def _add_errors(info: query_pb2.ClusterInfo, errors: Iterable[KindErrorRecord]) -> None:
    for e in errors:
        info.errors.add(
            kind=e.kind,
            message=e.message,
            http_status=e.http_status,
            cached=e.cached,
            since=_timestamp(e.since),
        )


def change_record(change: Change) -> query_pb2.ChangeRecord:
    record = query_pb2.ChangeRecord(
        type=str(change.type),
        cluster=change.cluster,
        kind=change.kind,
        namespace=change.namespace,
        name=change.name,
        uid=change.uid,
        resource_version=change.resource_version,
        old_resource_version=change.old_resource_version or "",
        applied_at=_timestamp(change.applied_at),
        observed_at=_timestamp(change.observed_at),
        changed_fields=change.changed_fields,
    )
    if change.resource is not None:
        record.labels.update(change.resource.labels)
        record.data_json = change.resource.json
    return record


def _diff_record(kind: str, item: StoredResource, before: StoredResource | None = None,
                 fields: tuple[str, ...] = ()) -> query_pb2.DiffRecord:  # fmt: skip
    r = item.resource
    return query_pb2.DiffRecord(
        type=kind,
        cluster=item.cluster,
        kind=r.kind,
        namespace=r.namespace,
        name=r.name,
        uid=r.uid,
        resource_version=r.resource_version,
        old_resource_version=before.resource.resource_version if before is not None else "",
        changed_fields=fields,
        labels=r.labels,
        data_json=r.json,
    )


def _key(item: StoredResource) -> tuple[str, str, str, str]:
    r = item.resource
    return item.cluster, r.kind, r.namespace, r.name


def diff_records(
    old: Iterable[StoredResource], new: Iterable[StoredResource]
) -> Iterator[query_pb2.DiffRecord]:
    """What differs between two query results, both ordered by (cluster, kind, namespace, name).

    A merge of the two ordered streams: memory stays bounded however many objects
    there are. Backends order keys by code point (SQLite's BINARY, PostgreSQL's "C"
    collation), the order Python compares strings in.
    """
    olds, news = iter(old), iter(new)
    a, b = next(olds, None), next(news, None)
    last: tuple[str, str, str, str] | None = None
    while a is not None or b is not None:
        ka = _key(a) if a is not None else None
        kb = _key(b) if b is not None else None
        current = min(k for k in (ka, kb) if k is not None)
        if last is not None and current < last:
            raise StorageError("the backend returned objects out of (cluster, kind, namespace, name) order")
        last = current
        if kb is None or (ka is not None and ka < kb):
            assert a is not None
            yield _diff_record("REMOVED", a, a)
            a = next(olds, None)
        elif ka is None or kb < ka:
            assert b is not None
            yield _diff_record("ADDED", b)
            b = next(news, None)
        else:
            assert a is not None and b is not None
            if a.resource.uid != b.resource.uid:  # re-created in between
                yield _diff_record("REMOVED", a, a)
                yield _diff_record("ADDED", b)
            else:
                fields = changed_fields(a.resource, b.resource)
                if fields or a.resource.resource_version != b.resource.resource_version:
                    yield _diff_record("CHANGED", b, a, fields)
            a, b = next(olds, None), next(news, None)


P = TypeVar("P", query_pb2.ResourcePage, query_pb2.ChangePage, query_pb2.DiffPage)


def _paged(
    records: Iterable[Any], page_type: Callable[[], P], field: str, size: int = PAGE_SIZE, max_bytes: int = PAGE_BYTES
) -> Iterator[P]:
    """Pages of at most ``size`` records, each cut once its records reach ``max_bytes`` (a big one still fits)."""
    page = page_type()
    entries = getattr(page, field)
    used = 0
    for record in records:
        entries.append(record)
        used += record.ByteSize() + RECORD_BYTES
        if len(entries) >= size or used >= max_bytes:
            yield page
            page = page_type()
            entries = getattr(page, field)
            used = 0
    if len(entries):
        yield page


def _pages(
    items: Iterable[StoredResource], size: int, as_json: bool, max_bytes: int = PAGE_BYTES, labels_as_json: bool = False,
    later: int | None = None,
) -> Iterator[query_pb2.ResourcePage]:
    """Pages of at most ``size`` records (``later`` after the first page, if given), each cut once its objects reach
    ``max_bytes`` (a big object still fits).

    Records are built in place in the page (``add``: no copy) and, with ``as_json``,
    the stored JSON is passed through untouched. With ``labels_as_json`` the labels
    are one orjson call each (``labels_json``) instead of a map, whose every entry is
    a message of its own to build and to serialize.
    """
    if labels_as_json and as_json:
        yield from _json_pages(items, size, max_bytes, later or size)
        return
    page = query_pb2.ResourcePage()
    add = page.resources.add
    count = used = 0
    for item in items:
        r = item.resource
        data = r.json
        if as_json:
            record = add(
                kind=r.kind, cluster=item.cluster, namespace=r.namespace, name=r.name, uid=r.uid,
                resource_version=r.resource_version, data_json=data,
            )  # fmt: skip
        else:
            record = add(
                kind=r.kind, cluster=item.cluster, namespace=r.namespace, name=r.name, uid=r.uid,
                resource_version=r.resource_version,
            )  # fmt: skip
            record.data.update(r.data)
        if labels_as_json:
            record.labels_json = labels_text(r.labels)
            used += len(record.labels_json)
        else:
            labels = record.labels
            for key, value in r.labels.items():
                labels[key] = value
                used += len(key) + len(value)
        count += 1
        used += len(data) + RECORD_BYTES
        if count >= size or used >= max_bytes:
            yield page
            page = query_pb2.ResourcePage()
            add = page.resources.add
            count = used = 0
            size = later or size
    if count:
        yield page


def labels_text(labels: dict[str, str]) -> bytes:
    """``labels_json``: compact JSON, keys sorted (by code point, as clients sort a map's keys)."""
    return orjson.dumps(labels, option=orjson.OPT_SORT_KEYS)


def _json_pages(
    items: Iterable[StoredResource], size: int, max_bytes: int, later: int
) -> Iterator[query_pb2.ResourcePage]:
    """``_pages`` with ``data_json`` and ``labels_json`` (as ``labels_text``), the common case made fast:
    the fields are set one by one, much cheaper than ``add``'s keyword arguments."""
    dumps = orjson.dumps
    sort_keys = orjson.OPT_SORT_KEYS
    page = query_pb2.ResourcePage()
    add = page.resources.add
    count = used = 0
    for item in items:
        r = item.resource
        data = r.json
        labels = dumps(r.labels, option=sort_keys)
        record = add()
        record.kind = r.kind
        record.cluster = item.cluster
        record.namespace = r.namespace
        record.name = r.name
        record.uid = r.uid
        record.resource_version = r.resource_version
        record.data_json = data
        record.labels_json = labels
        count += 1
        used += len(data) + len(labels) + RECORD_BYTES
        if count >= size or used >= max_bytes:
            yield page
            page = query_pb2.ResourcePage()
            add = page.resources.add
            count = used = 0
            size = later
    if count:
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


def _text(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _invalid(message: str) -> QueryRefused:
    return QueryRefused("INVALID_ARGUMENT", message)


def _selector(text: str) -> LabelSelector | None:
    try:
        return parse_selector(text)
    except SelectorError as exc:
        raise _invalid(str(exc)) from None


def scoped_resources(
    backend: StorageBackend, query: ResourceQuery, scope: list[str] | None
) -> Iterator[StoredResource]:
    """``backend.query`` over the clusters in ``scope`` (sorted; ``None``: all), still in (cluster, kind,
    namespace, name) order: one query per cluster, one after the other, ``query.limit`` over all of them."""
    if scope is None:
        return backend.query(query)
    items = itertools.chain.from_iterable(backend.query(dataclasses.replace(query, cluster=c)) for c in scope)
    return itertools.islice(items, query.limit) if query.limit else items


def _scoped_history(backend: StorageBackend, query: HistoryQuery, scope: list[str] | None) -> Iterator[Change]:
    """``backend.history`` over the clusters in ``scope``, newest first: one cluster is asked directly; for
    several, every cluster's changes are read and the others' skipped (one reading, in the backend's order)."""
    if scope is None:
        return backend.history(query)
    if len(scope) == 1:
        return backend.history(dataclasses.replace(query, cluster=scope[0]))
    allowed = frozenset(scope)
    changes = (c for c in backend.history(dataclasses.replace(query, limit=None)) if c.cluster in allowed)
    return itertools.islice(changes, query.limit) if query.limit else changes


def installed_kinds() -> list[query_pb2.KindInfo]:
    """The kinds of the collectors installed with the manager, with their declared columns and short names.

    Loaded through the one discovery path (``plugin_manager``), every installed
    collector by name; one that fails to load is left out (logged): its kind then
    gets a client's generic table, as a kind whose collector is not installed here.
    """
    from navigator import plugin_manager

    names = sorted({p.name for p in plugin_manager.discover() if p.group == plugin_manager.GROUPS["collectors"]})
    pm = plugin_manager.create_plugin_manager()
    for name in names:
        try:
            plugin_manager.load_plugins({"collectors": [name]}, pm)
        except Exception as exc:  # a broken third-party plugin must not break the queries
            logger.warning("collector {!r} is left out of the kinds the manager describes: {}", name, exc)
    return kind_infos(plugin_manager.collectors(pm).values())


def _kinds_or_none() -> list[query_pb2.KindInfo]:
    """``installed_kinds``, or none when the lookup fails: the queries go on, clients show generic tables."""
    try:
        return installed_kinds()
    except Exception as exc:
        logger.warning("cannot describe the installed kinds: {}", exc)
        return []


def kind_infos(collectors: Iterable[Collector]) -> list[query_pb2.KindInfo]:
    """``KindInfo`` messages for ``collectors``, by kind."""
    return [
        query_pb2.KindInfo(
            kind=c.name,
            short_names=list(c.short_names),
            namespaced=c.namespaced,
            columns=[
                query_pb2.KindColumn(name=k.name, path=k.path, wide=k.wide, type=k.type, description=k.description)
                for k in c.columns
            ],
        )
        for c in sorted(collectors, key=lambda c: c.name)
    ]


class QueryService:
    def __init__(self, ctx: SyncContext, collectors: Iterable[Collector] | None = None) -> None:
        """``collectors``: the kinds to describe to clients (``ListClusters`` ``kinds_only``); by default
        those installed with the manager, looked up at the first such question."""
        self.ctx = ctx
        self._given = kind_infos(collectors) if collectors is not None else None
        self._lookup: asyncio.Future[list[query_pb2.KindInfo]] | None = None
        if self._given is None:
            with contextlib.suppress(RuntimeError):  # started now when there is a loop: ready by the first question
                self._lookup = asyncio.get_running_loop().run_in_executor(None, _kinds_or_none)

    async def kinds(self) -> list[query_pb2.KindInfo]:
        """The kinds to describe, looked up once (the first question may wait for the lookup)."""
        if self._given is not None:
            return self._given
        if self._lookup is None:
            self._lookup = asyncio.get_running_loop().run_in_executor(None, _kinds_or_none)
        return await asyncio.shield(self._lookup)

    # -- times -----------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.ctx.clock(), UTC)

    def _history_on(self) -> None:
        if not self.ctx.config.history.enabled:
            raise QueryRefused("FAILED_PRECONDITION", HISTORY_OFF)

    def _not_future(self, stamp: Timestamp, name: str, now: datetime) -> datetime:
        when = stamp.ToDatetime(tzinfo=UTC)
        if (when - now).total_seconds() > CLOCK_SKEW:
            raise _invalid(f"{name} {_text(when)} is in the future (the manager's time is {_text(now)})")
        return when

    def _at(self, stamp: Timestamp, name: str, now: datetime) -> datetime:
        """A time to rebuild objects at: history is kept, and reaches back that far."""
        self._history_on()
        when = self._not_future(stamp, name, now)
        retention = self.ctx.config.history.retention
        oldest = now - timedelta(seconds=retention)
        if when < oldest:
            raise _invalid(
                f"{name} {_text(when)} is older than the history retention ({_span(retention)}): "
                f"the manager answers for times after {_text(oldest)}"
            )
        return when

    # -- clusters --------------------------------------------------------------------

    def _load(
        self, scope: list[str] | None
    ) -> tuple[list[ClusterRecord], dict[str, dict[str, int]], dict[str, Holding]]:
        backend = self.ctx.backend
        if scope is None:
            records = backend.list_clusters()
        else:
            records = [found for c in scope if (found := backend.get_cluster(c)) is not None]
        counts = {r.cluster: backend.counts(r.cluster) for r in records}
        return records, counts, dict(self.ctx.claims.holdings())

    def _load_at(
        self, scope: list[str] | None, at: datetime
    ) -> tuple[list[ClusterRecord], dict[str, dict[str, int]]]:
        """The cluster records kept at or before ``at``, and their objects then counted by kind."""
        backend = self.ctx.backend
        if scope is None:
            records = backend.list_clusters(at=at)
        else:
            records = [found for c in scope if (found := backend.get_cluster(c, at=at)) is not None]
        counts: dict[str, dict[str, int]] = {}
        for item in scoped_resources(backend, ResourceQuery(at=at), scope):
            per = counts.setdefault(item.cluster, {})
            per[item.resource.kind] = per.get(item.resource.kind, 0) + 1
        known = {r.cluster for r in records}
        # Objects without a kept record (history turned on mid-way): still a cluster then.
        records += [ClusterRecord(c) for c in counts if c not in known]
        records.sort(key=lambda r: r.cluster)
        for record in records:
            counts.setdefault(record.cluster, {})
        return records, counts

    async def list_clusters(
        self, request: query_pb2.ListClustersRequest, reader: Reader
    ) -> query_pb2.ListClustersResponse:
        """Every cluster the reader may see (or the one asked for); a limited reader is shown no edge ids.

        With ``kinds_only``, the kinds instead: how their collectors say to show them.
        """
        if request.kinds_only:
            return query_pb2.ListClustersResponse(kinds=await self.kinds())
        scope = reader.scope(request.cluster)
        show_edge = not reader.limited
        response = query_pb2.ListClustersResponse()
        if request.HasField("at"):
            at = self._at(request.at, "at", self._now())
            records, counts = await asyncio.to_thread(self._load_at, scope, at)
            known = {kind for per in counts.values() for kind in per}
            for record in records:
                full = dict.fromkeys(sorted(known), 0) | counts[record.cluster]
                response.clusters.append(cluster_info_at(record, full, at, self.ctx, show_edge))
            return response
        records, counts, holdings = await asyncio.to_thread(self._load, scope)
        # A cluster whose first state storage refused has no stored record: still shown, with the failure.
        stored = {r.cluster for r in records}
        for cluster in sorted(self.ctx.storage_failures):
            if cluster not in stored and (scope is None or cluster in scope):
                records.append(ClusterRecord(cluster))
                counts[cluster] = {}
        # A kind some cluster has shows as 0 where it is missing, so every row has the same keys.
        known = {kind for per in counts.values() for kind in per}
        now = self.ctx.clock()
        for record in records:
            full = dict.fromkeys(sorted(known), 0) | counts[record.cluster]
            holding = holdings.get(record.cluster)
            response.clusters.append(cluster_info(record, full, holding, self.ctx, now, show_edge))
        return response

    # -- resources, changes, diffs ---------------------------------------------------

    async def list_resources(
        self, request: query_pb2.ListResourcesRequest, reader: Reader
    ) -> AsyncIterator[query_pb2.ResourcePage]:
        scope = reader.scope(request.cluster)
        query = ResourceQuery(
            kind=request.kind or None,
            cluster=request.cluster or None,
            namespace=request.namespace or None,
            name=request.name or None,
            selector=_selector(request.label_selector),
            limit=_limit(request.limit),
            at=self._at(request.at, "at", self._now()) if request.HasField("at") else None,
        )
        backend = self.ctx.backend
        as_json = request.data_as_json
        labels_as_json = request.labels_as_json
        max_bytes = min(PAGE_BYTES, self.ctx.config.limits.max_message_size // 4)

        def pages() -> Iterator[query_pb2.ResourcePage]:
            return _pages(
                scoped_resources(backend, query, scope), PAGE_SIZE, as_json, max_bytes, labels_as_json, LATER_PAGE_SIZE
            )

        async for page in iterate_in_thread(pages):
            yield page

    async def list_changes(
        self, request: query_pb2.ListChangesRequest, reader: Reader
    ) -> AsyncIterator[query_pb2.ChangePage]:
        scope = reader.scope(request.cluster)
        self._history_on()
        now = self._now()
        since = self._not_future(request.since, "since", now) if request.HasField("since") else None
        until = self._not_future(request.until, "until", now) if request.HasField("until") else None
        if since is not None and until is not None and since > until:
            raise _invalid(f"since {_text(since)} is after until {_text(until)}")
        query = HistoryQuery(
            cluster=request.cluster or None,
            kind=request.kind or None,
            namespace=request.namespace or None,
            name=request.name or None,
            selector=_selector(request.label_selector),
            since=since,
            until=until,
            limit=_limit(request.limit),
        )
        backend = self.ctx.backend

        max_bytes = min(PAGE_BYTES, self.ctx.config.limits.max_message_size // 4)

        def pages() -> Iterator[query_pb2.ChangePage]:
            changes = _scoped_history(backend, query, scope)
            return _paged((change_record(c) for c in changes), query_pb2.ChangePage, "changes", max_bytes=max_bytes)

        async for page in iterate_in_thread(pages):
            yield page

    async def diff(self, request: query_pb2.DiffRequest, reader: Reader) -> AsyncIterator[query_pb2.DiffPage]:
        scope = reader.scope(request.cluster)
        self._history_on()
        if not request.HasField("from_time"):
            raise _invalid("from_time is required: the earlier of the two times to compare")
        now = self._now()
        start = self._at(request.from_time, "from_time", now)
        # "Now" is read from the history too, so both sides are rebuilt the same way.
        end = self._at(request.to_time, "to_time", now) if request.HasField("to_time") else now
        if start > end:
            raise _invalid(f"from_time {_text(start)} is after to_time {_text(end)}")
        selector = _selector(request.label_selector)

        def at(when: datetime, cluster: str | None) -> ResourceQuery:
            return ResourceQuery(
                kind=request.kind or None,
                cluster=cluster,
                namespace=request.namespace or None,
                selector=selector,
                at=when,
            )

        backend = self.ctx.backend

        def compare(cluster: str | None) -> Iterator[query_pb2.DiffRecord]:
            return diff_records(backend.query(at(start, cluster)), backend.query(at(end, cluster)))

        max_bytes = min(PAGE_BYTES, self.ctx.config.limits.max_message_size // 4)

        def pages() -> Iterator[query_pb2.DiffPage]:
            # One cluster after the other, in order: the entries stay ordered by cluster first.
            clusters: list[str | None] = [None] if scope is None else list(scope)
            entries = itertools.chain.from_iterable(compare(c) for c in clusters)
            return _paged(entries, query_pb2.DiffPage, "entries", max_bytes=max_bytes)

        async for page in iterate_in_thread(pages):
            yield page
