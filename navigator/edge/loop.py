"""The sync loop: what to collect when, and what to hand the stream.

``poll`` mode lists every kind each interval and sends a FULL state. ``watch``
mode lists once, keeps watches open and sends the changes as a DELTA each
interval (an empty one if nothing changed, so the manager knows the edge is
alive), with a FULL every ``sync.full_resync_interval``, after every reconnect,
and whenever a kind failed or its watch broke. The interval adapts to churn.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from loguru import logger

from navigator import metrics
from navigator.config.edge import EdgeConfig
from navigator.edge.adaptive import AdaptiveInterval
from navigator.edge.collect import CollectResult, KindCollector
from navigator.edge.kube import KubeClient
from navigator.edge.messages import Delta, FullSnapshot
from navigator.edge.outbox import Outbox
from navigator.edge.watch import KindWatcher
from navigator.resource import Resource

#: While a collection runs longer than this, log how far each kind got.
PROGRESS_EVERY = 10.0

PendingKey = tuple[str, str, str, str]


@dataclass(slots=True)
class LoopStats:
    last_counts: dict[str, int] | None = None
    interval: float = 0.0


class SyncLoop:
    def __init__(
        self,
        config: EdgeConfig,
        collectors: Mapping[str, KindCollector],
        client: KubeClient,
        outbox: Outbox,
    ) -> None:
        self.config = config
        self.collectors = dict(collectors)
        self.client = client
        self.outbox = outbox
        # The loop listens to what it drives: collection progress, and states the buffer had to drop.
        for kc in self.collectors.values():
            kc.progress = kc.progress or self.progress
        outbox.on_lost = outbox.on_lost or self.request_full_soon
        self.adaptive = AdaptiveInterval(config.sync.interval, config.sync.adaptive)
        self.stats = LoopStats(interval=self.adaptive.current)
        self._wake = asyncio.Event()
        #: The stream asked for a FULL (reconnect, RETRY ack, dropped state).
        self._resync_requested = True
        #: A kind failed or its watch broke: only a fresh list continues it.
        self._relist_needed = True
        self._watchers: dict[str, KindWatcher] = {}
        self._pending: dict[PendingKey, tuple[bool, Resource]] = {}
        self._progress: dict[str, int] = {}

    # -- requests from the stream ----------------------------------------------------------

    def request_full(self, wake: bool = True) -> None:
        """The manager needs a full resync: at once (``wake``, after a reconnect) or at the next sync.

        Any FULL queued after the request satisfies it, including one whose
        collection was already running (it is sent after the request was made).
        """
        self._resync_requested = True
        if wake:
            self._wake.set()

    def request_full_soon(self) -> None:
        self.request_full(wake=False)

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        watch = self.config.sync.mode == "watch"
        next_full = 0.0
        try:
            while True:
                now = time.monotonic()
                if not watch or self._resync_requested or self._relist_needed or now >= next_full:
                    self._relist_needed = False
                    snapshot = await self.collect_full(start_watches=watch)
                    next_full = time.monotonic() + self.config.sync.full_resync_interval
                    changes = _sum_changes(snapshot.results.values())
                    await self.outbox.put(snapshot)
                    # No await since the put: every request made so far is answered by this snapshot.
                    self._resync_requested = False
                    self._wake.clear()
                else:
                    delta = self.take_delta()
                    changes = delta.object_count
                    await self.outbox.put(delta)
                interval = self.adaptive.observe(changes)
                if interval != self.stats.interval:
                    logger.info("sync interval now {:.1f}s ({} changes in the last sync)", interval, changes)
                self.stats.interval = interval
                wait = interval if not watch else min(interval, max(0.0, next_full - time.monotonic()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)
                self._wake.clear()
        finally:
            self.stop_watches()

    async def collect_full(self, start_watches: bool = False) -> FullSnapshot:
        """List every kind concurrently; in watch mode, restart the watches from the new lists."""
        self.stop_watches()
        started = time.monotonic()
        self._progress = {}
        reporter = asyncio.create_task(self._report_progress(started))
        try:
            results = await asyncio.gather(*(c.collect() for c in self.collectors.values()))
        finally:
            reporter.cancel()
        snapshot = FullSnapshot({r.kind: r for r in results})
        took = time.monotonic() - started
        self.stats.last_counts = {r.kind: r.count for r in results}
        _log_collection(results, took)
        metrics.observe_edge_sync(
            self.config.cluster.id, took, self.stats.last_counts, failed=[r.kind for r in results if r.error]
        )
        if start_watches:
            self._start_watches(results)
        if any(not r.ok for r in results):
            self._relist_needed = True  # retry the failed kinds at the next sync
        return snapshot

    def progress(self, kind: str, listed: int) -> None:
        """Progress callback for the collectors (called from their threads)."""
        self._progress[kind] = listed
        metrics.set_collect_progress(self.config.cluster.id, kind, listed)

    async def _report_progress(self, started: float) -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            so_far = ", ".join(f"{k} {n}" for k, n in self._progress.items()) or "nothing yet"
            logger.info("still collecting after {:.0f}s: {} objects listed so far", time.monotonic() - started, so_far)

    # -- watches ---------------------------------------------------------------------------

    def _start_watches(self, results: list[CollectResult]) -> None:
        loop = asyncio.get_running_loop()
        for result in results:
            if not result.ok or not result.resource_version:
                continue
            kc = self.collectors[result.kind]
            watcher = KindWatcher(kc.collector, self.client, self.config.kubernetes, loop, self._on_event, self._broken)
            watcher.start(result.resource_version)
            self._watchers[result.kind] = watcher

    def stop_watches(self) -> None:
        for watcher in self._watchers.values():
            watcher.stop()
        self._watchers.clear()
        self._pending.clear()

    def _on_event(self, event_type: str, resource: Resource) -> None:
        key = (resource.kind, resource.namespace, resource.name, resource.uid)
        self._pending[key] = (event_type != "DELETED", resource)

    def _broken(self, kind: str, reason: str) -> None:
        logger.warning("{} {}; a full resync follows", kind, reason)
        watcher = self._watchers.pop(kind, None)
        if watcher is not None:
            watcher.stop()
        self._relist_needed = True

    def take_delta(self) -> Delta:
        """The changes watched since the last state, latest event per object."""
        pending, self._pending = self._pending, {}
        delta = Delta()
        for upsert, resource in pending.values():
            (delta.upserts if upsert else delta.deletions).append(resource)
        return delta

    def cancel(self) -> None:
        for kc in self.collectors.values():
            kc.cancel()
        self.stop_watches()


def _sum_changes(results: Iterable[CollectResult]) -> int | None:
    known = [r.changes for r in results if r.changes is not None]
    return sum(known) if known else None


def _describe(result: CollectResult) -> str:
    text = f"{result.kind} {result.count}"
    if result.cached:
        text += " (cached)"
    elif not result.ok:
        text += " (failed)"
    return text


def _log_collection(results: list[CollectResult], took: float) -> None:
    api_bytes = sum(r.api_bytes for r in results)
    failed = [r for r in results if r.error is not None]
    log = logger.warning if failed else logger.info
    log(
        "collected {} in {:.2f}s ({:.1f} MB from the API){}",
        ", ".join(_describe(r) for r in results),
        took,
        api_bytes / 1e6,
        "; failed: " + "; ".join(f"{r.kind}: {r.error.message}" for r in failed if r.error) if failed else "",
        counts={r.kind: r.count for r in results},
        seconds=round(took, 3),
        api_bytes=api_bytes,
        failed=[r.kind for r in failed],
    )
