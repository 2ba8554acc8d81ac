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

from loguru import logger

from navigator.config.edge import KubernetesSection
from navigator.edge.backoff import Backoff
from navigator.edge.kube import KubeApiError, KubeClient
from navigator.interfaces import Collector
from navigator.resource import Resource

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
class CollectResult:
    """The outcome of collecting one kind."""

    kind: str
    resources: list[Resource] = field(default_factory=list)
    #: The list's resourceVersion: where a watch starts. Empty when not freshly listed.
    resource_version: str = ""
    error: KindFailure | None = None
    #: ``resources`` are the last good collection because this one failed.
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


def count_changes(old: list[Resource] | None, new: list[Resource]) -> int | None:
    """How many objects differ between two collections of a kind (by uid and resourceVersion)."""
    if old is None:
        return None
    before = {r.uid or f"{r.namespace}/{r.name}": r.resource_version for r in old}
    changed = 0
    for r in new:
        rv = before.pop(r.uid or f"{r.namespace}/{r.name}", None)
        if rv != r.resource_version:
            changed += 1
    return changed + len(before)


class KindCollector:
    """Collects one collector's kind with retries; remembers the last good result."""

    def __init__(
        self,
        collector: Collector,
        client: KubeClient,
        config: KubernetesSection,
        *,
        executor: Executor | None = None,
        progress: ProgressFn | None = None,
        sleep: SleepFn = asyncio.sleep,
    ) -> None:
        self.collector = collector
        self.client = client
        self.config = config
        self.executor = executor
        self.progress = progress
        self.sleep = sleep
        self.last_good: list[Resource] | None = None
        self._cancel = threading.Event()

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
                resources, rv, size, skipped = await loop.run_in_executor(self.executor, self.list_all)
            except KubeApiError as exc:
                error = exc
                if exc.status in FINAL_STATUSES or attempt == attempts:
                    break
                wait = exc.retry_after if exc.retry_after is not None else backoff.next()
                logger.warning(
                    "listing {} failed (attempt {}/{}): {}; retrying in {:.1f}s", self.kind, attempt, attempts, exc, wait
                )
                await self.sleep(wait)
                continue
            api_bytes += size
            changes = count_changes(self.last_good, resources)
            self.last_good = resources
            return CollectResult(
                kind=self.kind,
                resources=resources,
                resource_version=rv,
                duration=time.monotonic() - started,
                api_bytes=api_bytes,
                skipped=skipped,
                changes=changes,
            )
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
            resources=self.last_good if self.last_good is not None else [],
            error=failure,
            cached=cached,
            duration=time.monotonic() - started,
        )

    def list_all(self) -> tuple[list[Resource], str, int, int]:
        """Every object of the kind, page by page (blocking). Returns (resources, rv, bytes, skipped)."""
        for restart in range(MAX_LIST_RESTARTS + 1):
            try:
                return self._list_pages()
            except KubeApiError as exc:
                if not exc.expired or restart == MAX_LIST_RESTARTS:
                    raise
                logger.info("list of {} expired while paging ({}); starting the list again", self.kind, exc.message)
        raise AssertionError("unreachable")

    def _list_pages(self) -> tuple[list[Resource], str, int, int]:
        path = self.collector.collection_path
        to_resource = self.collector.to_resource
        resources: list[Resource] = []
        token: str | None = None
        size = skipped = 0
        rv = ""
        while True:
            if self._cancel.is_set():
                raise Cancelled(self.kind)
            page = self.client.list_page(
                path, limit=self.config.page_size, continue_token=token, label_selector=self.collector.label_selector
            )
            size += page.size
            rv = page.resource_version or rv
            for obj in page.items:
                try:
                    resources.append(to_resource(obj))
                except Exception as exc:  # one odd object must not lose the whole kind
                    skipped += 1
                    if skipped <= 5:
                        logger.warning("{}: skipping an object the collector cannot read: {!r}", self.kind, exc)
            if self.progress is not None:
                self.progress(self.kind, len(resources))
            token = page.continue_token
            if not token:
                return resources, rv, size, skipped
