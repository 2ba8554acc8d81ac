"""The Watch RPC: changes as the manager applies them, optionally preceded by the current objects.

With ``initial`` the watch subscribes to the change feed first, then lists the
matching objects (as ``ListResources`` does) and sends them as ADDED, then what
the feed queued meanwhile and the live changes: nothing applied after the
subscription is missed, though an object changed during the listing may show
twice. Pages stay bounded in count and bytes, as the other queries' do.

A deletion under a label selector is delivered when the object's last labels
matched. The feed knows them for objects whose last change it saw; for the
others the history decides (it keeps the labels a deleted object last had).
With history off, such a deletion is delivered only if the object was in the
initial listing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from datetime import datetime

from navigator.interfaces import QueryRefused, ResourceQuery
from navigator.interfaces.storage import HistoryQuery
from navigator.manager.change_feed import (
    ChangeFeed,
    Item,
    Key,
    SubscriptionClosed,
    UnsureDeletion,
    WatchFilter,
    key_of,
)
from navigator.manager.edge_session import SyncContext
from navigator.manager.query_service import (
    PAGE_BYTES,
    PAGE_SIZE,
    RECORD_BYTES,
    change_record,
    iterate_in_thread,
    scoped_resources,
)
from navigator.manager.readers import Reader
from navigator.resource import Change, ChangeType, StoredResource
from navigator.selectors import LabelSelector, SelectorError, parse_selector
from navigator.v1 import query_pb2


def watch_filter(request: query_pb2.WatchRequest, reader: Reader) -> WatchFilter:
    """The request's filters, within the clusters ``reader`` may see; a bad selector is INVALID_ARGUMENT,
    another reader's cluster PERMISSION_DENIED."""
    reader.check(request.cluster)
    try:
        selector = parse_selector(request.label_selector)
    except SelectorError as exc:
        raise QueryRefused("INVALID_ARGUMENT", f"label_selector: {exc}") from None
    return WatchFilter(
        kind=request.kind or None,
        cluster=request.cluster or None,
        namespace=request.namespace or None,
        name=request.name or None,
        selector=selector or None,
        clusters=reader.clusters,
    )


def _initial_pages(items: Iterable[StoredResource], max_bytes: int, listed: set[Key] | None
                   ) -> Iterator[query_pb2.ChangePage]:  # fmt: skip
    """The current objects as ADDED records (no times: the listing is not a change), in bounded pages."""
    page = query_pb2.ChangePage()
    add = page.changes.add
    count = used = 0
    for item in items:
        r = item.resource
        record = add(
            type="ADDED", cluster=item.cluster, kind=r.kind, namespace=r.namespace, name=r.name, uid=r.uid,
            resource_version=r.resource_version, data_json=r.json,
        )  # fmt: skip
        labels = record.labels
        for key, value in r.labels.items():
            labels[key] = value
            used += len(key) + len(value)
        if listed is not None:
            listed.add((item.cluster, r.kind, r.namespace, r.name))
        count += 1
        used += len(record.data_json) + RECORD_BYTES
        if count >= PAGE_SIZE or used >= max_bytes:
            yield page
            page = query_pb2.ChangePage()
            add = page.changes.add
            count = used = 0
    if count:
        yield page


def change_pages(changes: Iterable[Change], max_bytes: int) -> Iterator[query_pb2.ChangePage]:
    """Changes as records in pages of at most ``PAGE_SIZE``, each cut once its objects reach ``max_bytes``."""
    page = query_pb2.ChangePage()
    count = used = 0
    for change in changes:
        record = change_record(change)
        page.changes.append(record)
        count += 1
        used += len(record.data_json) + RECORD_BYTES + sum(len(k) + len(v) for k, v in record.labels.items())
        if count >= PAGE_SIZE or used >= max_bytes:
            yield page
            page = query_pb2.ChangePage()
            count = used = 0
    if count:
        yield page


class WatchService:
    def __init__(self, ctx: SyncContext, feed: ChangeFeed) -> None:
        self.ctx = ctx
        self.feed = feed

    def _max_bytes(self) -> int:
        return min(PAGE_BYTES, self.ctx.config.limits.max_message_size // 4)

    async def watch(
        self, request: query_pb2.WatchRequest, reader: Reader
    ) -> AsyncGenerator[query_pb2.ChangePage, None]:
        """Pages of changes (of the clusters ``reader`` may see) until the watcher leaves; ``QueryRefused``
        when the feed ends the watch."""
        filter = watch_filter(request, reader)
        scope = reader.scope(request.cluster)
        sub = self.feed.subscribe(filter, self.ctx.config.watch.buffer)
        max_bytes = self._max_bytes()
        history = self.ctx.config.history.enabled
        # Without history, a deletion under a selector is judged by the initial listing.
        listed: set[Key] | None = set() if filter.selector is not None and not history else None
        try:
            if request.initial:
                query = ResourceQuery(
                    kind=filter.kind, cluster=filter.cluster, namespace=filter.namespace, name=filter.name,
                    selector=filter.selector,
                )  # fmt: skip
                backend = self.ctx.backend

                def initial() -> Iterator[query_pb2.ChangePage]:
                    return _initial_pages(scoped_resources(backend, query, scope), max_bytes, listed)

                async for page in iterate_in_thread(initial):
                    yield page
            async for batch in sub:
                changes = await self._decide(batch, filter.selector, listed)
                for page in change_pages(changes, max_bytes):
                    yield page
        except SubscriptionClosed as exc:
            raise QueryRefused(exc.code, exc.message) from None
        finally:
            sub.close()

    async def _decide(
        self, batch: Sequence[Item], selector: LabelSelector | None, listed: set[Key] | None
    ) -> list[Change]:
        """The batch's changes, with each unsure deletion kept only if the object's last labels matched."""
        unsure = [item.change for item in batch if isinstance(item, UnsureDeletion)]
        if not unsure:
            return [item for item in batch if not isinstance(item, UnsureDeletion)]
        if listed is not None or selector is None:
            matched = {id(c) for c in unsure if listed is not None and key_of(c) in listed}
        else:
            matched = await asyncio.to_thread(self._deleted_matching, unsure, selector)
        out: list[Change] = []
        for item in batch:
            if not isinstance(item, UnsureDeletion):
                out.append(item)
            elif id(item.change) in matched:
                out.append(item.change)
        return out

    def _deleted_matching(self, deletions: Sequence[Change], selector: LabelSelector) -> set[int]:
        """Of these deletions, those (by ``id``) whose DELETED history row matches ``selector``: one read per apply."""
        groups: dict[tuple[str, str, datetime], list[Change]] = {}
        for change in deletions:
            if change.applied_at is not None:
                groups.setdefault((change.cluster, change.kind, change.applied_at), []).append(change)
        matched: set[int] = set()
        for (cluster, kind, applied_at), changes in groups.items():
            one = changes[0] if len(changes) == 1 else None
            query = HistoryQuery(
                cluster=cluster, kind=kind, namespace=one.namespace if one else None, name=one.name if one else None,
                selector=selector, since=applied_at, until=applied_at,
            )  # fmt: skip
            found = {
                (c.namespace, c.name, c.uid)
                for c in self.ctx.backend.history(query)
                if c.type is ChangeType.DELETED
            }
            matched.update(id(c) for c in changes if (c.namespace, c.name, c.uid) in found)
        return matched

