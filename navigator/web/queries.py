"""What the HTTP API answers, asked of the manager's own query methods (the gRPC service's core) and
shaped as the rows ``navigator query -o json`` prints.

Listings are paged on the server: a page reads at most ``limit + 1`` objects in the
storage's key order (cluster, kind, namespace, name). A continue token holds the
last key sent; the next page starts in that key's cluster and asks the following
clusters one by one, so no page ever reads the clusters before it. Another order
(``sort``) is given only for listings of at most ``SORT_MAX`` matches: sorting a
million objects would mean reading them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from navigator.client.client import changes_request, diff_request, list_request, timestamp
from navigator.client.joined import endpoint_rows, service_entry
from navigator.client.rows import change_row, cluster_row, diff_row, json_rows, resource_row, view_rows
from navigator.interfaces import QueryRefused
from navigator.manager.readers import Reader
from navigator.selectors import SelectorError, parse_selector
from navigator.v1 import query_pb2
from navigator.web import paging
from navigator.web.auth import Caller

if TYPE_CHECKING:
    from navigator.manager.app import Manager

#: The views with a row shape of their own; any other kind is listed through ``resources``.
KIND_VIEWS = ("services", "endpointslices", "pods")

#: The most objects a listing in another order than the key's may match.
SORT_MAX = 10_000

#: Seconds an overview answer is handed out as it is, and at most while a newer one is asked for.
OVERVIEW_FRESH = 1.0
OVERVIEW_STALE = 10.0

#: Pods shown per cluster on a service's page.
SERVICE_PODS = 100

#: Pods one query for a service page reads at most, over all clusters, before asking cluster by cluster.
SERVICE_POD_READ = 20_000

Key = tuple[str, str, str, str]

T = TypeVar("T")


@contextlib.asynccontextmanager
async def closing(pages: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """Close a query's page stream when the reader stops early: the storage read behind it stops too."""
    try:
        yield pages
    finally:
        aclose = getattr(pages, "aclose", None)
        if aclose is not None:
            await aclose()


def invalid(message: str) -> QueryRefused:
    return QueryRefused("INVALID_ARGUMENT", message)


@dataclass(frozen=True, slots=True)
class Filters:
    kind: str | None = None
    cluster: str | None = None
    namespace: str | None = None
    selector: str | None = None
    name: str | None = None
    at: datetime | None = None

    def check(self) -> None:
        if self.selector:
            try:
                parse_selector(self.selector)
            except SelectorError as exc:
                raise invalid(f"selector: {exc}") from None

    def request(self, cluster: str | None = None, limit: int = 0) -> query_pb2.ListResourcesRequest:
        return list_request(self.kind, cluster or self.cluster, self.namespace, self.selector, self.name, limit, self.at)

    def parts(self) -> list[Any]:
        return [self.kind, self.cluster, self.namespace, self.selector, self.name, self.at.isoformat() if self.at else None]


@dataclass(slots=True)
class Page:
    #: The rows as JSON text (``,``-joined objects), ready to splice into a JSON array.
    items: bytes
    count: int
    next: str | None


def _key(record: query_pb2.ResourceRecord) -> Key:
    return record.cluster, record.kind, record.namespace, record.name


class Queries:
    """The HTTP API's questions, each answered through the ``Manager``'s query methods as ``caller``."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager
        #: The overview kept per reader (a handful: one per configured reader).
        self._overviews: dict[Reader, _Kept] = {}

    # -- clusters ----------------------------------------------------------------------

    async def clusters(self, caller: Caller, cluster: str | None, at: datetime | None) -> list[dict[str, Any]]:
        """The cluster rows; ``age_seconds`` as of now (or ``at``).

        The overview (every cluster, now) is what every open dashboard asks every few
        seconds, and counting a million stored objects per kind takes the core about
        100 ms: so one answer per reader is kept and handed out while younger than
        ``OVERVIEW_FRESH`` seconds, then refreshed in the background while the kept one is
        still handed out, up to ``OVERVIEW_STALE`` seconds. Any other question is asked afresh.
        """
        request = query_pb2.ListClustersRequest(cluster=cluster or "", at=timestamp(at))
        if cluster or at is not None:
            response = await self.manager.list_clusters(request, caller.peer)
        else:
            response = await self._overview(caller, request)
        now = at or datetime.now(UTC)
        return [cluster_row(info, now) for info in response.clusters]

    async def _overview(self, caller: Caller, request: query_pb2.ListClustersRequest) -> query_pb2.ListClustersResponse:
        kept = self._overviews.setdefault(caller.reader, _Kept())
        age = time.monotonic() - kept.taken
        if kept.response is not None and age < OVERVIEW_STALE:
            if age >= OVERVIEW_FRESH and kept.refresh is None:
                kept.refresh = asyncio.create_task(self._refresh(kept, caller, request))
                kept.refresh.add_done_callback(_retrieved)
            return kept.response
        if kept.refresh is None:
            kept.refresh = asyncio.create_task(self._refresh(kept, caller, request))
            kept.refresh.add_done_callback(_retrieved)
        return await asyncio.shield(kept.refresh)

    async def _refresh(
        self, kept: _Kept, caller: Caller, request: query_pb2.ListClustersRequest
    ) -> query_pb2.ListClustersResponse:
        try:
            response = await self.manager.list_clusters(request, caller.peer)
            kept.response, kept.taken = response, time.monotonic()
            return response
        finally:
            kept.refresh = None

    # -- resources ---------------------------------------------------------------------

    async def _records(
        self, caller: Caller, request: query_pb2.ListResourcesRequest
    ) -> AsyncIterator[query_pb2.ResourceRecord]:
        async with closing(self.manager.list_resources(request, caller.peer)) as pages:
            async for page in pages:
                for record in page.resources:
                    yield record

    async def _clusters_from(self, caller: Caller, first: str) -> list[str]:
        """The clusters after ``first`` the caller may see, in order: where a continued listing goes next."""
        records = await asyncio.to_thread(self.manager.backend.list_clusters)
        return [r.cluster for r in records if r.cluster > first and caller.reader.may_see(r.cluster)]

    async def resources(
        self, caller: Caller, view: str, filters: Filters, limit: int, sort: str, token: str | None
    ) -> Page:
        """One page of ``view`` rows (``resources`` or a kind view), in key order or sorted by ``sort``."""
        filters.check()
        caller.reader.check(filters.cluster or "")
        query = paging.fingerprint("resources", view, filters.parts(), sort)
        if sort:
            return await self._sorted(caller, view, filters, limit, sort, token, query)
        taken: list[query_pb2.ResourceRecord] = []
        more = False
        if token is None:
            async for record in self._records(caller, filters.request(limit=limit + 1)):
                if len(taken) == limit:
                    more = True
                    break
                taken.append(record)
        else:
            after = paging.key_of(paging.decode(token, query))
            clusters = [after[0]]
            if filters.cluster is None:
                clusters += await self._clusters_from(caller, after[0])
            for cluster in clusters:
                first = cluster == after[0]
                request = filters.request(cluster, limit=0 if first else limit + 1 - len(taken))
                async for record in self._records(caller, request):
                    if first and _key(record) <= after:
                        continue
                    if len(taken) == limit:
                        more = True
                        break
                    taken.append(record)
                if more:
                    break
        items = bytes(json_rows(taken, view)) if taken else b""
        next_token = paging.encode(query, k=list(_key(taken[-1]))) if more else None
        return Page(items, len(taken), next_token)

    async def _sorted(
        self, caller: Caller, view: str, filters: Filters, limit: int, sort: str, token: str | None, query: str
    ) -> Page:
        offset = paging.offset_of(paging.decode(token, query)) if token else 0
        records = [r async for r in self._records(caller, filters.request(limit=SORT_MAX + 1))]
        if len(records) > SORT_MAX:
            raise invalid(
                f"sort: more than {SORT_MAX:,} objects match; narrow the query (cluster, namespace, selector) "
                "to sort, or leave sort out: the default order pages through any number"
            )
        rows = view_rows(records, view)
        field = sort.removeprefix("-")
        rows.sort(key=lambda row: _order(row.get(field)), reverse=sort.startswith("-"))
        window = rows[offset : offset + limit]
        more = offset + limit < len(rows)
        items = b",".join(orjson.dumps(row) for row in window)
        return Page(items, len(window), paging.encode(query, o=offset + limit) if more else None)

    # -- history -----------------------------------------------------------------------

    async def changes(
        self, caller: Caller, filters: Filters, since: datetime | None, until: datetime | None, limit: int,
        token: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:  # fmt: skip
        """Changes newest first; the first page fixes the times (``until`` now, ages as times) for the next."""
        filters.check()
        query = paging.fingerprint("changes", filters.parts())
        offset = 0
        if token is not None:
            position = paging.decode(token, query)
            offset = paging.offset_of(position)
            since, until = _stamp(position, "s"), _stamp(position, "u")
        elif until is None:
            until = datetime.now(UTC)
        request = changes_request(
            filters.cluster, filters.kind, filters.namespace, filters.selector, filters.name, since, until,
            offset + limit + 1,
        )  # fmt: skip
        rows: list[dict[str, Any]] = []
        seen = 0
        async with closing(self.manager.list_changes(request, caller.peer)) as pages:
            async for page in pages:
                for record in page.changes:
                    seen += 1
                    if seen > offset:
                        rows.append(change_row(record))
        more = len(rows) > limit
        next_token = paging.encode(query, o=offset + limit, s=_text(since), u=_text(until)) if more else None
        return rows[:limit], next_token

    async def diff(
        self, caller: Caller, filters: Filters, start: datetime, end: datetime | None, limit: int, token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """What differs between two times; the first page fixes the times (``end`` now, ages as times) for the next."""
        filters.check()
        query = paging.fingerprint("diff", filters.parts())
        offset = 0
        if token is not None:
            position = paging.decode(token, query)
            offset = paging.offset_of(position)
            start, end = _stamp(position, "f") or start, _stamp(position, "t")
        elif end is None:
            end = datetime.now(UTC)
        request = diff_request(start, end, filters.cluster, filters.kind, filters.namespace, filters.selector)
        rows: list[dict[str, Any]] = []
        seen = 0
        async with closing(self.manager.diff(request, caller.peer)) as pages:
            async for page in pages:
                for record in page.entries:
                    seen += 1
                    if seen > offset:
                        rows.append(diff_row(record))
                    if len(rows) > limit:
                        break
                if len(rows) > limit:
                    break
        more = len(rows) > limit
        next_token = paging.encode(query, o=offset + limit, f=_text(start), t=_text(end)) if more else None
        return rows[:limit], next_token

    # -- the joined service view -------------------------------------------------------

    async def service(
        self, caller: Caller, namespace: str, name: str, cluster: str | None, pods: int | None = None
    ) -> list[dict[str, Any]]:
        """The service in every cluster the caller may see: its slices' readiness, its endpoints and pods.

        The shape of ``navigator.client.joined.service_view``, plus per-slice counts and the
        pods, from label queries (the slices by ``kubernetes.io/service-name``, the pods by
        the service's selector, at most ``pods`` per cluster) rather than whole namespaces:
        a namespace may hold a cluster's ten thousand pods.
        """
        caller.reader.check(cluster or "")
        services = [
            resource_row(_record(r), "services")
            async for r in self._records(caller, list_request("services", cluster, namespace, None, name, 0))
        ]
        if not services:
            return []
        # The slices and the pods are read at the same time: one's storage read overlaps the other's rows.
        slices, found = await asyncio.gather(
            self._slices(caller, namespace, name, cluster),
            self._pods(caller, namespace, cluster, services, SERVICE_PODS if pods is None else pods),
        )
        return [_service_entry(svc, slices.get(svc["cluster"], []), *found.get(svc["cluster"], ([], False)))
                for svc in services]  # fmt: skip

    async def _slices(
        self, caller: Caller, namespace: str, name: str, cluster: str | None
    ) -> dict[str, list[dict[str, Any]]]:
        """The service's endpoint slices per cluster, found by their ``kubernetes.io/service-name`` label."""
        slices: dict[str, list[dict[str, Any]]] = {}
        selector = f"kubernetes.io/service-name={name}"
        async for r in self._records(caller, list_request("endpointslices", cluster, namespace, selector, None, 0)):
            row = resource_row(_record(r), "endpointslices")
            if row.get("service") in (name, None):
                slices.setdefault(row["cluster"], []).append(row)
        return slices

    async def _pods(
        self, caller: Caller, namespace: str, cluster: str | None, services: list[dict[str, Any]], limit: int
    ) -> dict[str, tuple[list[dict[str, Any]], bool]]:
        """Per cluster, the first ``limit`` pods its service selects and whether there are more.

        Services of one name usually select alike in every cluster: one query per distinct
        selector over all clusters, reading at most ``limit + 1`` pods per cluster that has
        the service. Should it stop short (some cluster has far more), the clusters it did
        not see to the end are asked one by one.
        """
        groups: dict[str, list[str]] = {}
        for svc in services:
            selector = svc.get("selector")
            if isinstance(selector, dict) and selector:  # a service without a selector selects no pods
                text = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
                groups.setdefault(text, []).append(svc["cluster"])
        found: dict[str, tuple[list[dict[str, Any]], bool]] = {}
        for text, clusters in groups.items():
            wanted = set(clusters)
            budget = min(SERVICE_POD_READ, (limit + 1) * len(clusters))
            scope = clusters[0] if len(clusters) == 1 else cluster
            per: dict[str, list[query_pb2.ResourceRecord]] = {}
            read = 0
            async for record in self._records(caller, list_request("pods", scope, namespace, text, None, budget)):
                read += 1
                mine = per.setdefault(record.cluster, [])
                if record.cluster in wanted and len(mine) <= limit:
                    mine.append(record)
            complete = set(wanted)
            if read >= budget:  # cut short: only the clusters before the last one read are known whole
                last = max(per) if per else ""
                complete = {c for c in wanted if c < last}
                for c in sorted(wanted - complete):
                    request = list_request("pods", c, namespace, text, None, limit + 1)
                    per[c] = [r async for r in self._records(caller, request)]
            for c in clusters:
                records = per.get(c, [])
                found[c] = (view_rows(records[:limit], "pods"), len(records) > limit)
        return found


@dataclass(slots=True)
class _Kept:
    """An overview answer and when it was taken; ``refresh`` while a newer one is being asked for."""

    response: query_pb2.ListClustersResponse | None = None
    taken: float = 0.0
    refresh: asyncio.Task[query_pb2.ListClustersResponse] | None = None


def _retrieved(task: asyncio.Task[Any]) -> None:
    """A background refresh that failed: the next request asks again (and sees the error if it persists)."""
    if not task.cancelled():
        task.exception()


def _text(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def _stamp(position: dict[str, Any], field: str) -> datetime | None:
    """A time a token fixed; ``None`` if it fixed none."""
    value = position.get(field)
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise invalid("continue: not a token this API gave") from None


def _record(record: query_pb2.ResourceRecord) -> dict[str, Any]:
    return view_rows([record])[0]


def _order(value: Any) -> tuple[int, float, str]:
    """A sort key for any JSON value: numbers, then text, then the rest, then missing values."""
    if value is None:
        return 3, 0.0, ""
    if isinstance(value, bool | int | float):
        return 0, float(value), ""
    if isinstance(value, str):
        return 1, 0.0, value
    return 2, 0.0, orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _service_entry(
    svc: dict[str, Any], slices: Sequence[dict[str, Any]], pods: list[dict[str, Any]], more_pods: bool
) -> dict[str, Any]:
    """``navigator query service``'s entry (one home: ``navigator.client.joined``), with per-slice and
    total counts and the pods the service selects."""
    by_name = {p["name"]: p for p in pods}
    ordered = sorted(slices, key=lambda s: s["name"])
    entry = service_entry(svc, endpoint_rows(ordered, by_name.get))
    endpoints = entry.pop("endpoints")
    summaries = []
    for s in ordered:
        mine = s.get("endpoints") or []
        summaries.append(
            {
                "name": s["name"],
                "address_type": s.get("address_type"),
                "endpoints": len(mine),
                "ready": sum(1 for e in mine if e.get("ready")),
                "serving": sum(1 for e in mine if e.get("serving")),
                "terminating": sum(1 for e in mine if e.get("terminating")),
            }
        )
    return {
        **entry,
        "serving_endpoints": sum(1 for e in endpoints if e["serving"]),
        "terminating_endpoints": sum(1 for e in endpoints if e["terminating"]),
        "total_endpoints": len(endpoints),
        "endpointslices": summaries,
        "endpoints": endpoints,
        "pods": pods,
        "pods_truncated": more_pods,
    }
