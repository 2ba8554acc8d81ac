"""Keeping a Kubernetes watch open for one kind, on its own thread.

A watch starts at the resourceVersion of the list it follows, so no change
between list and watch is missed. It reopens itself after the server's timeout
(from the last event or bookmark), retries transient failures with backoff, and
reports itself broken when the version expired (410) or retries ran out: then
only a fresh list can continue, which the sync loop does with a full resync.
It also tells the loop when an attempt failed and when the server accepted the
watch again (``on_health``): while a watch is down the edge cannot vouch for
its copy of the kind.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from loguru import logger

from navigator.backoff import Backoff
from navigator.config.edge import KubernetesSection
from navigator.edge.collect import FINAL_STATUSES, KindFailure
from navigator.edge.kube import KubeApiError, KubeClient, WatchStop
from navigator.interfaces import Collector
from navigator.resource import Resource

#: Called on the event loop with (event type, resource): ADDED, MODIFIED or DELETED.
EventFn = Callable[[str, Resource], None]
#: Called on the event loop with (kind, reason) when the watch cannot continue.
BrokenFn = Callable[[str, str], None]
#: Called on the event loop with (kind, None) when the server accepted the watch, and with
#: (kind, failure) when an attempt failed and the watch is being reopened.
HealthFn = Callable[[str, KindFailure | None], None]


class KindWatcher:
    def __init__(
        self,
        collector: Collector,
        client: KubeClient,
        config: KubernetesSection,
        loop: asyncio.AbstractEventLoop,
        on_event: EventFn,
        on_broken: BrokenFn,
        on_health: HealthFn | None = None,
    ) -> None:
        self.collector = collector
        self.client = client
        self.config = config
        self.loop = loop
        self.on_event = on_event
        self.on_broken = on_broken
        self.on_health = on_health
        self._stop = WatchStop()
        self._thread: threading.Thread | None = None
        #: Where the watch thread reopens from (the last event or bookmark it read).
        self.resource_version = ""
        #: The last version whose event (or bookmark) reached the event loop: where a replacement
        #: watcher starts, so that nothing this one read but did not deliver is missed.
        self.delivered_version = ""

    @property
    def kind(self) -> str:
        return self.collector.name

    def start(self, resource_version: str) -> None:
        self.resource_version = self.delivered_version = resource_version
        self._thread = threading.Thread(target=self._run, name=f"navigator-watch-{self.kind}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ends the watch promptly; no event is delivered after this returns to the event loop."""
        self._stop.set()

    def _post(self, fn: Callable[..., None] | None, *args: object, version: str = "") -> None:
        if self._stop.stopped:
            return
        try:
            self.loop.call_soon_threadsafe(self._deliver, fn, args, version)
        except RuntimeError:  # the event loop is closed: the edge is gone
            self._stop.set()

    def _deliver(self, fn: Callable[..., None] | None, args: tuple[object, ...], version: str) -> None:
        if self._stop.stopped:
            return
        if version:
            self.delivered_version = version
        if fn is not None:
            fn(*args)

    def _opened(self) -> None:
        if self.on_health is not None:
            self._post(self.on_health, self.kind, None)

    def _run(self) -> None:
        backoff = Backoff(self.config.retry)
        failures = 0
        convert = self.collector.convert  # to item_type first when the collector declares one
        while not self._stop.stopped:
            try:
                for event in self.client.watch(
                    self.collector.collection_path,
                    self.resource_version,
                    label_selector=self.collector.label_selector,
                    stop=self._stop,
                    idle_timeout=self.config.watch_idle_timeout,
                    opened=self._opened,
                ):
                    failures = 0
                    backoff.reset()
                    meta = event.object.get("metadata")
                    rv = str(meta.get("resourceVersion") or "") if isinstance(meta, dict) else ""
                    if rv:
                        self.resource_version = rv
                    if event.type == "BOOKMARK":
                        if rv:
                            self._post(None, version=rv)
                        continue
                    if event.type not in ("ADDED", "MODIFIED", "DELETED"):
                        continue
                    try:
                        resource = convert(event.object)
                        if not resource.name or not resource.uid:
                            raise ValueError("it has no metadata.name or metadata.uid")
                    except Exception as exc:  # skip what the collector cannot read
                        logger.warning(
                            "{}: skipping a watch event the collector cannot read: {!r}", self.kind, exc
                        )
                        continue
                    self._post(self.on_event, event.type, resource, version=rv)
            except KubeApiError as exc:
                if self._stop.stopped:
                    return
                if exc.expired:
                    self._post(self.on_broken, self.kind, f"watch expired: {exc.message}")
                    return
                if exc.status in FINAL_STATUSES:  # e.g. RBAC allows list but not watch: poll instead
                    self._post(self.on_broken, self.kind, f"cannot watch: {exc}")
                    return
                failures += 1
                if failures >= self.config.retry_attempts:
                    self._post(self.on_broken, self.kind, f"watch failed {failures} times: {exc}")
                    return
                wait = exc.retry_after if exc.retry_after is not None else backoff.next()
                logger.warning("watch on {} failed: {}; reopening in {:.1f}s", self.kind, exc, wait)
                if self.on_health is not None:
                    self._post(self.on_health, self.kind, KindFailure(f"watch failed: {exc}", exc.status, failures))
                if self._stop.wait(wait):
                    return
            except Exception as exc:  # a thread must report, not die silently
                self._post(self.on_broken, self.kind, f"watch crashed: {exc!r}")
                return
