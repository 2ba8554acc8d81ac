"""The sync loop: what to collect when, and what to hand the stream.

``poll`` mode lists every kind each interval and sends a FULL state. ``watch``
mode lists once, keeps watches open and sends what they see as it happens: the
first change waits ``sync.batch_window`` (50 ms) for others, then they leave as
one DELTA (at most ``sync.batch_max_objects``). While the stream has not taken
the previous state (slow manager, dropped connection) nothing more is queued:
changes keep merging, latest event per object, and leave together when it has.
A quiet cluster still sends an empty DELTA every interval, so the manager knows
the edge is alive. A FULL follows every ``sync.full_resync_interval``, a
request of the stream, and a broken watch (at once, at most once a second);
a kind that failed to list is retried after an interval. The interval adapts
to churn (poll mode's period; watch mode's liveness period). While the manager
takes open chunk sets (and before any manager answered), a FULL is queued when
its collection starts, so the stream sends its pages as they are listed; its
timestamp is then the collection's start.

No silent staleness: every state's timestamp is the time as of which the edge
vouches for its copy. It is "now" only while nothing is known broken: the API
answered (before each liveness delta the edge asks it for ``/version`` within
``kubernetes.probe_timeout``), every watch is open and every kind collected.
Otherwise the timestamp stays where it last could vouch, so the manager's
``fresh_as_of`` stops advancing, and every DELTA lists in ``errors`` the kinds
it cannot vouch for now and why (protocol 2: the manager shows the latest list,
and a DELTA without them clears them). A collection that runs longer than an
interval (a relist against an API that does not answer) does not silence the
edge: half an interval in, then every interval, it probes the API and sends
such a DELTA. A FULL queued when its collection started is let go of then if
the API does not answer (it is queued again when it is collected); otherwise it
is on its way, ends with the errors, and the stream sends heartbeats meanwhile.
When the API answers again after an outage, the watches are reopened from the
last version they delivered, so nothing a connection lost meanwhile is missed,
and the copy is vouched for again once they are open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass

from loguru import logger

from navigator import metrics
from navigator.config.edge import EdgeConfig
from navigator.edge.adaptive import AdaptiveInterval
from navigator.edge.collect import CollectResult, KindCollector, KindFailure
from navigator.edge.kube import KubeApiError, KubeClient
from navigator.edge.live import LiveFull
from navigator.edge.messages import Delta, FullSnapshot
from navigator.edge.outbox import Outbox
from navigator.edge.partial import KindError
from navigator.edge.watch import KindWatcher
from navigator.resource import Resource

#: While a collection runs longer than this, log how far each kind got.
PROGRESS_EVERY = 10.0
#: A broken watch relists at once, but never sooner than this after the previous list started.
RELIST_AT_MOST_EVERY = 1.0
#: The API probe's timeout when ``kubernetes.probe_timeout`` is unset: half the interval, at most this.
PROBE_TIMEOUT_MAX = 10.0

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
        #: A resync request (``request_full``) or a broken watch: stop waiting.
        self._wake = asyncio.Event()
        #: A watched change arrived.
        self._changed = asyncio.Event()
        #: When (monotonic) the next FULL is due; 0: at once.
        self._next_full = 0.0
        self._last_full_started = 0.0
        self._watchers: dict[str, KindWatcher] = {}
        #: Latest event per object since the last delta: (upsert?, resource, observed at).
        self._pending: dict[PendingKey, tuple[bool, Resource, float]] = {}
        self._progress: dict[str, int] = {}
        #: Why the API does not answer (the last probe failed), and since when (``time.time()``).
        self._api_failure: KindFailure | None = None
        self._api_failing_since: float | None = None
        #: Kinds whose watch is down: failing and reopening, broken until a relist, or reopening after an outage.
        self._watch_failures: dict[str, KindFailure] = {}
        #: Set while no watch is down (``_watch_failures`` is empty).
        self._watches_open = asyncio.Event()
        self._watches_open.set()
        #: Kinds that failed in the last collection (retried at the next sync).
        self._failed: dict[str, KindError] = {}
        #: A collection is running: in watch mode the watches are stopped meanwhile.
        self._collecting = False
        #: The latest time as of which the edge vouched for its copy (a state's timestamp).
        self._vouched_at: float | None = None
        #: A FULL was queued: DELTAs may follow (a stream never starts with one).
        self._sent_full = False
        #: Whether to queue a FULL when its collection starts, for an open chunk set (the stream says).
        self.open_sets: Callable[[], bool] = lambda: False
        #: The FULL being collected that was queued when its collection started.
        self._live: FullSnapshot | None = None

    # -- requests from the stream ----------------------------------------------------------

    def request_full(self, wake: bool = True) -> None:
        """The manager needs a full resync: at once (``wake``, after a reconnect) or after an interval.

        Any FULL queued after the request satisfies it, including one whose
        collection was already running (it is sent after the request was made).
        """
        if wake:
            self._next_full = 0.0
            self._wake.set()
        else:
            self._next_full = min(self._next_full, time.monotonic() + self.stats.interval)

    def request_full_soon(self) -> None:
        self.request_full(wake=False)

    @property
    def live(self) -> LiveFull | None:
        """The pages of the FULL being collected that was queued when it started (None: no such FULL)."""
        return self._live.live if self._live is not None else None

    # -- the loop --------------------------------------------------------------------------

    async def run(self) -> None:
        watch = self.config.sync.mode == "watch"
        try:
            while True:
                if self._full_due():
                    await self._full(watch)
                elif watch:
                    await self._watched()
                else:
                    await self._until(None, self._next_full)
        finally:
            self.stop_watches()

    def _full_due(self) -> bool:
        return time.monotonic() >= self._next_full

    async def _until(self, awaitable: Awaitable[object] | None, deadline: float | None) -> None:
        """Wait for ``awaitable`` (None: nothing), a wake-up or the ``deadline`` (monotonic; None: none)."""
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(self._wake.wait())]
        if awaitable is not None:
            waits.append(asyncio.ensure_future(awaitable))
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()

    async def _full(self, watch: bool) -> None:
        """Collect and queue a FULL: when it is done, or (``open_sets``) when it starts, so that a stream
        whose manager takes open chunk sets sends it while it is collected (docs/protocol.md)."""
        self._last_full_started = time.monotonic()
        live: FullSnapshot | None = None
        if self.open_sets():
            # Its timestamp is the collection's start: every chunk carries it, the first leaves before the end.
            live = FullSnapshot({}, timestamp=self.stamp(), live=LiveFull())
            await self.outbox.put(live)
            self._sent_full = True
            self._live = live
        reporter = asyncio.create_task(self._report_while_collecting())
        try:
            snapshot = await self.collect_full(start_watches=watch, live=live.live if live is not None else None)
        except BaseException:
            if live is not None and live.live is not None:
                live.live.cancel()
            raise
        finally:
            reporter.cancel()
            self._live = None
        changes = _sum_changes(snapshot.results.values())
        if live is not None and live.live is not None and not live.live.detached:
            # Results first: the stream reads them as soon as the collection is marked finished.
            live.results = snapshot.results
            live.live.finish(snapshot.results)
            snapshot = live
        else:  # (a FULL the stream let go of while it was collected, too)
            snapshot.timestamp = self.stamp(snapshot.timestamp)
            await self.outbox.put(snapshot)
            self._sent_full = True
        # No await since the put (or, for a FULL queued at its start, since its collection ended): every
        # request made so far is answered by this snapshot.
        self._wake.clear()
        interval = self.adaptive.observe(changes)
        if interval != self.stats.interval:
            logger.info("sync interval now {:.1f}s ({} changes in the last sync)", interval, changes)
        self.stats.interval = interval
        if any(not r.ok for r in snapshot.results.values()):
            self._next_full = time.monotonic() + interval  # retry the failed kinds at the next sync
        elif watch:
            self._next_full = time.monotonic() + self.config.sync.full_resync_interval
        else:
            self._next_full = time.monotonic() + interval

    async def _watched(self) -> None:
        """Queue the next delta: watched changes after the batching window, or an empty one when quiet.

        Before an empty one the API is probed: the delta vouches for the copy as of the probe,
        or says what is wrong.
        """
        sync = self.config.sync
        quiet_until = min(self._next_full, time.monotonic() + self.stats.interval)
        answered: float | None = None
        if not self._pending:
            self._changed.clear()
            await self._until(self._changed.wait(), quiet_until)
            if self._full_due() or self._wake.is_set():
                return
            if self._pending and sync.batch_window:
                await self._until(asyncio.sleep(sync.batch_window), self._next_full)
            elif not self._pending and time.monotonic() < quiet_until:
                return
            if not self._pending:
                answered = await self.probe()
                if answered is not None and self._watch_failures:
                    # Reopening (after an outage): a moment for them to open, so this delta can vouch again.
                    await self._until(self._watches_open.wait(), time.monotonic() + self.probe_timeout())
        # Nothing more is queued until the stream has taken the last state: changes merge meanwhile.
        await self._until(self.outbox.drained(), self._next_full)
        if self._full_due() or self._wake.is_set() or len(self.outbox):
            return
        delta = self.take_delta(sync.batch_max_objects)
        delta.errors = self.condition()
        delta.timestamp = self.stamp(answered)
        await self.outbox.put(delta)

    # -- what the edge can vouch for -------------------------------------------------------

    def probe_timeout(self) -> float:
        configured = self.config.kubernetes.probe_timeout
        if configured is not None:
            return configured
        return min(PROBE_TIMEOUT_MAX, self.stats.interval / 2, self.config.kubernetes.request_timeout)

    async def probe(self) -> float | None:
        """Ask the API for ``/version``; returns when it was asked if it answered, None if not.

        A failure is what the next DELTA reports for every kind; the first answer after one
        reopens the watches (their connections may have lost bytes meanwhile).
        """
        asked = time.time()
        try:
            await asyncio.to_thread(self.client.probe, self.probe_timeout())
        except KubeApiError as exc:
            self._api_unreachable(KindFailure(str(exc), exc.status, 1), asked)
            return None
        self._api_answered()
        return asked

    def _api_unreachable(self, failure: KindFailure, asked: float) -> None:
        if self._api_failure is None:
            self._api_failing_since = asked
            logger.warning("the Kubernetes API does not answer: {}; the manager is told", failure.message)
        else:
            failure.attempts = self._api_failure.attempts + 1
        self._api_failure = failure

    def _api_answered(self) -> None:
        if self._api_failure is None:
            return
        down = time.time() - (self._api_failing_since or time.time())
        logger.info("the Kubernetes API answers again (after {:.0f}s); reopening the watches", down)
        self._api_failure = self._api_failing_since = None
        self._reopen_watches("reopening after the Kubernetes API did not answer")

    def _reopen_watches(self, why: str) -> None:
        """Replace every watcher by one started from the last version it delivered (no relist)."""
        for kind, old in list(self._watchers.items()):
            old.stop()
            self._watch_failures[kind] = KindFailure(why)
            self._watchers[kind] = self._watcher(kind, old.delivered_version)
        self._watches_changed()

    def _watches_changed(self) -> None:
        if self._watch_failures:
            self._watches_open.clear()
        else:
            self._watches_open.set()

    def condition(self) -> list[KindError]:
        """Every kind the edge cannot vouch for now, and why: what each DELTA's ``errors`` list.

        A watch that failed once and is reopening is routine (a dropped connection): it is listed
        once a reopen failed too. The manager keeps serving its copy of each kind (``cached``).
        """
        if self._api_failure is not None:
            return [KindError(kind, self._api_failure, cached=True) for kind in sorted(self.collectors)]
        errors = dict(self._failed)
        for kind, failure in self._watch_failures.items():
            if kind not in errors and failure.attempts >= 2:
                errors[kind] = KindError(kind, failure, cached=True)
        return [errors[kind] for kind in sorted(errors)]

    def can_vouch(self) -> bool:
        """Whether the copy sent so far is exact now: the API answers, every watch is open, every kind collected."""
        return self._api_failure is None and not self._watch_failures and not self._failed and not self._collecting

    def stamp(self, evidence: float | None = None) -> float:
        """A state's timestamp: ``evidence`` (when the API last answered; default now) while the edge can
        vouch for its copy, else the last time it could, so that the manager's freshness stops there."""
        if self.can_vouch() or self._vouched_at is None:  # the first state has nothing earlier to point to
            when = evidence if evidence is not None else time.time()
            self._vouched_at = max(self._vouched_at or when, when)
        return self._vouched_at

    async def _report_while_collecting(self) -> None:
        """A collection longer than an interval (lists against an API that does not answer, retried)
        must not silence the edge: half an interval in and then every interval, probe the API and,
        if anything is wrong and the stream has taken what was queued, send an empty DELTA with what
        the edge cannot vouch for (in poll mode, where a collection starts up to an interval after
        the API went away, that is still within two intervals of it)."""
        wait = self.stats.interval / 2
        while True:
            await asyncio.sleep(wait)
            wait = self.stats.interval
            if not self._sent_full:
                continue  # a stream starts with a FULL: nothing to add to yet
            await self.probe()
            live = self._live.live if self._live is not None else None
            if live is not None and not live.detached:
                if self._api_failure is None:
                    continue  # the FULL is on its way (an open set): what it ends with says it all
                # The API does not answer: the manager must hear why now, not when the lists give up. The
                # stream lets go of the open set and the FULL is queued when its collection ends.
                live.detach(f"the Kubernetes API does not answer ({self._api_failure.message})")
            errors = self.condition()
            if errors and len(self.outbox) == 0:  # nothing wrong: the collection's FULL will say it all
                await self.outbox.put(Delta(errors=errors, timestamp=self.stamp()))

    async def collect_full(self, start_watches: bool = False, live: LiveFull | None = None) -> FullSnapshot:
        """List every kind concurrently; in watch mode, restart the watches from the new lists.

        With ``live``, every page's objects are handed to it as they are listed.
        """
        self.stop_watches()
        started = time.monotonic()
        self._progress = {}
        self._collecting = True
        reporter = asyncio.create_task(self._report_progress(started))
        for kc in self.collectors.values():
            kc.feed = live
        try:
            results = await asyncio.gather(*(c.collect() for c in self.collectors.values()))
        finally:
            reporter.cancel()
            self._collecting = False
            for kc in self.collectors.values():
                kc.feed = None
        snapshot = FullSnapshot({r.kind: r for r in results})
        self._collected(results, start_watches)
        took = time.monotonic() - started
        self.stats.last_counts = {r.kind: r.count for r in results}
        _log_collection(results, took)
        metrics.observe_edge_sync(
            self.config.cluster.id, took, self.stats.last_counts, failed=[r.kind for r in results if r.error]
        )
        if start_watches:
            self._start_watches(results)
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

    def _collected(self, results: list[CollectResult], watching: bool) -> None:
        """What a collection proves: a kind listed is exact as of now (its watch starts from the list);
        one that failed is not. A list that succeeded is an answer from the API."""
        self._failed = {r.kind: KindError(r.kind, r.error, r.cached) for r in results if r.error is not None}
        for result in results:
            if result.ok and (not watching or result.resource_version):
                self._watch_failures.pop(result.kind, None)
        self._watches_changed()
        if any(r.ok for r in results):
            self._api_failure = self._api_failing_since = None

    # -- watches ---------------------------------------------------------------------------

    def _watcher(self, kind: str, resource_version: str) -> KindWatcher:
        watcher = KindWatcher(
            self.collectors[kind].collector,
            self.client,
            self.config.kubernetes,
            asyncio.get_running_loop(),
            self._on_event,
            self._broken,
            self._watch_health,
        )
        watcher.start(resource_version)
        return watcher

    def _start_watches(self, results: list[CollectResult]) -> None:
        for result in results:
            if not result.ok or not result.resource_version:
                continue
            self._watchers[result.kind] = self._watcher(result.kind, result.resource_version)

    def _watch_health(self, kind: str, failure: KindFailure | None) -> None:
        """A watch is open again (None), or an attempt failed and it is reopening."""
        if failure is None:
            self._watch_failures.pop(kind, None)
        else:
            self._watch_failures[kind] = failure
        self._watches_changed()

    def stop_watches(self) -> None:
        for watcher in self._watchers.values():
            watcher.stop()
        self._watchers.clear()
        self._pending.clear()

    def _on_event(self, event_type: str, resource: Resource) -> None:
        key = (resource.kind, resource.namespace, resource.name, resource.uid)
        # Re-inserted: a changed object moves behind the others, so a capped delta sends the oldest first.
        self._pending.pop(key, None)
        self._pending[key] = (event_type != "DELETED", resource, time.time())
        self._changed.set()

    def _broken(self, kind: str, reason: str) -> None:
        logger.warning("{} {}; a full resync follows", kind, reason)
        self._watch_failures[kind] = KindFailure(f"relisting: {reason}", attempts=2)
        self._watches_changed()
        watcher = self._watchers.pop(kind, None)
        if watcher is not None:
            watcher.stop()
        self._next_full = min(self._next_full, self._last_full_started + RELIST_AT_MOST_EVERY)
        self._wake.set()

    def take_delta(self, max_objects: int | None = None) -> Delta:
        """The changes watched since the last state, latest event per object, oldest first (at most ``max_objects``)."""
        delta = Delta()
        if max_objects is None or len(self._pending) <= max_objects:
            taken, self._pending = self._pending, {}
            items = iter(taken.values())
        else:
            keys = [key for key, _ in zip(self._pending, range(max_objects), strict=False)]
            items = iter([self._pending.pop(key) for key in keys])
        for upsert, resource, observed in items:
            if upsert:
                delta.upserts.append(resource)
                delta.upserts_observed.append(observed)
            else:
                delta.deletions.append(resource)
                delta.deletions_observed.append(observed)
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
