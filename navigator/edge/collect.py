"""Collecting one kind completely: paged listing, retries, and the cached fallback.

A kind either collects completely or reports an error; if it failed but was
collected before, its last good result is used instead, marked cached, so the
manager keeps a usable (if stale) view rather than nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loguru import logger

from navigator.backoff import Backoff
from navigator.config.edge import KubernetesSection
from navigator.edge.kube import KubeApiError, KubeClient
from navigator.edge.records import pack, unpack
from navigator.interfaces import Collector, Serializer
from navigator.resource import Resource

if TYPE_CHECKING:
    from navigator.edge.live import LiveFull

#: Statuses a retry cannot fix (bad request, RBAC, unknown resource, ...): report at once.
FINAL_STATUSES = frozenset({400, 403, 404, 405, 406, 415, 422})
#: A 410 on a continue token restarts the list; give up after this many restarts in one attempt.
MAX_LIST_RESTARTS = 3

#: Called from a worker thread with (kind, objects listed so far) after every page.
ProgressFn = Callable[[str, int], None]
SleepFn = Callable[[float], Awaitable[None]]


class Cancelled(Exception):
    """The edge is stopping; a listing thread gives up between pages."""


@dataclass(slots=True)
class KindFailure:
    message: str
    http_status: int = 0
    attempts: int = 1


@dataclass(slots=True)
class Versions:
    """Hashes of (id, resourceVersion) and of ids: enough to count changes between collections cheaply."""

    pairs: set[int] = field(default_factory=set, repr=False)
    ids: set[int] = field(default_factory=set, repr=False)

    def add(self, resource: Resource) -> None:
        ident = resource.uid or f"{resource.namespace}/{resource.name}"
        self.ids.add(hash(ident))
        self.pairs.add(hash((ident, resource.resource_version)))

    def changes_since(self, old: Versions) -> int:
        """Objects added or modified, plus objects gone."""
        return len(self.pairs - old.pairs) + len(old.ids - self.ids)


@dataclass(slots=True)
class CollectResult:
    """The outcome of collecting one kind; objects are kept packed (see ``navigator.edge.records``)."""

    kind: str
    #: Serialized ``navigator.v1.Resource`` messages, payloads encoded with ``serializer``.
    items: list[bytes] = field(default_factory=list, repr=False)
    serializer: Serializer | None = None
    #: The list's resourceVersion: where a watch starts. Empty when not freshly listed.
    resource_version: str = ""
    error: KindFailure | None = None
    #: ``items`` are the last good collection because this one failed.
    cached: bool = False
    duration: float = 0.0
    #: Bytes of API responses read.
    api_bytes: int = 0
    #: Objects the collector could not convert (logged, left out).
    skipped: int = 0
    #: Objects added, changed or gone since the previous good collection; None on the first.
    changes: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def state_bytes(self) -> int:
        """Size of the encoded records (what this kind adds to a state)."""
        return sum(len(item) for item in self.items)

    @property
    def resources(self) -> list[Resource]:
        """The records decoded again (slow for big kinds: for tests, summaries and debugging)."""
        if self.serializer is None:
            return []
        return [unpack(item, self.serializer) for item in self.items]


class KindCollector:
    """Collects one collector's kind with retries; remembers the last good result."""

    def __init__(
        self,
        collector: Collector,
        client: KubeClient,
        config: KubernetesSection,
        serializer: Serializer,
        *,
        executor: Executor | None = None,
        progress: ProgressFn | None = None,
        sleep: SleepFn = asyncio.sleep,
    ) -> None:
        self.collector = collector
        self.client = client
        self.config = config
        self.serializer = serializer
        self.executor = executor
        self.progress = progress
        self.sleep = sleep
        #: The last complete collection: the cached fallback when collecting fails.
        self.last_good: CollectResult | None = None
        self._versions: Versions | None = None
        self._cancel = threading.Event()
        #: Set while a FULL is collected for an open chunk set: each page's objects are handed to it as listed.
        self.feed: LiveFull | None = None

    @property
    def kind(self) -> str:
        return self.collector.name

    def cancel(self) -> None:
        self._cancel.set()

    async def collect(self) -> CollectResult:
        started = time.monotonic()
        backoff = Backoff(self.config.retry)
        attempts = self.config.retry_attempts
        error: KubeApiError | None = None
        api_bytes = 0
        loop = asyncio.get_running_loop()
        for attempt in range(1, attempts + 1):
            try:
                items, versions, rv, size, skipped = await loop.run_in_executor(self.executor, self.list_all)
            except KubeApiError as exc:
                error = exc
                if exc.status in FINAL_STATUSES or attempt == attempts:
                    break
                wait = exc.retry_after if exc.retry_after is not None else backoff.next()
                logger.warning(
                    "listing {} failed (attempt {}/{}): {}; retrying in {:.2f}s",
                    self.kind,
                    attempt,
                    attempts,
                    exc,
                    wait,
                )
                await self.sleep(wait)
                continue
            api_bytes += size
            changes = versions.changes_since(self._versions) if self._versions is not None else None
            self._versions = versions
            result = CollectResult(
                kind=self.kind,
                items=items,
                serializer=self.serializer,
                resource_version=rv,
                duration=time.monotonic() - started,
                api_bytes=api_bytes,
                skipped=skipped,
                changes=changes,
            )
            self.last_good = result
            return result
        assert error is not None
        failure = KindFailure(message=str(error), http_status=error.status, attempts=attempt)
        cached = self.last_good is not None
        logger.error(
            "collecting {} failed after {} attempt(s): {}{}",
            self.kind,
            attempt,
            error,
            " (sending the last good collection, marked cached)" if cached else "",
        )
        return CollectResult(
            kind=self.kind,
            items=self.last_good.items if self.last_good is not None else [],
            serializer=self.serializer,
            error=failure,
            cached=cached,
            duration=time.monotonic() - started,
        )

    def list_all(self) -> tuple[list[bytes], Versions, str, int, int]:
        """Every object of the kind, page by page (blocking): (packed items, versions, rv, bytes, skipped)."""
        for restart in range(MAX_LIST_RESTARTS + 1):
            try:
                return self._list_pages()
            except KubeApiError as exc:
                if not exc.expired or restart == MAX_LIST_RESTARTS:
                    raise
                logger.info(
                    "list of {} expired while paging ({}); starting the list again", self.kind, exc.message
                )
        raise AssertionError("unreachable")

    def _list_pages(self) -> tuple[list[bytes], Versions, str, int, int]:
        path = self.collector.collection_path
        to_resource = self.collector.to_resource
        serializer = self.serializer
        items: list[bytes] = []
        feed = self.feed
        if feed is not None:
            feed.begin(self.kind, items, serializer)
        versions = Versions()
        token: str | None = None
        size = skipped = 0
        rv = ""
        while True:
            if self._cancel.is_set():
                raise Cancelled(self.kind)
            page = self.client.list_page(
                path,
                limit=self.config.page_size,
                continue_token=token,
                label_selector=self.collector.label_selector,
                item_type=self.collector.item_type,
            )
            size += page.size
            rv = page.resource_version or rv
            token = page.continue_token
            for reason in page.rejected:  # objects that do not fit the collector's item_type
                skipped += 1
                if skipped <= 5:
                    logger.warning("{}: skipping an object the collector cannot read: {}", self.kind, reason)
            for obj in page.items:
                try:
                    resource = to_resource(obj)
                    if not resource.name or not resource.uid:
                        raise ValueError("it has no metadata.name or metadata.uid")
                    items.append(pack(resource, serializer))
                except Exception as exc:  # one odd object must not lose the whole kind (nor the state)
                    skipped += 1
                    if skipped <= 5:
                        logger.warning(
                            "{}: skipping an object the collector cannot read: {!r}", self.kind, exc
                        )
                    continue
                versions.add(resource)
            del page
            if feed is not None:
                feed.page(self.kind, len(items))
            if self.progress is not None:
                self.progress(self.kind, len(items))
            if not token:
                return items, versions, rv, size, skipped
