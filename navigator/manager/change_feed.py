"""The manager's live change feed: every applied change, handed to each watcher whose filter it matches.

The feed is the first sink of the manager's ``SinkFanout``, so it sees every
change set right after its apply commits, in apply order. ``publish`` runs on the
event loop and never waits: each subscription filters the changes and queues
the ones it wants. A subscription is bounded: when more than ``buffer`` changes
are pending (its watcher reads too slowly, or asked for too much), it is closed
with a reason and its queue dropped at once, so a stalled watcher costs at most
``buffer`` changes of memory and then nothing.

Label selectors and deletions: a DELETED change carries no object, hence no
labels. A subscription with a selector remembers the keys whose last change it
saw matched; a deletion of one of those is delivered, and a deletion of any
other key matching the other filters is queued as an ``UnsureDeletion`` for the
consumer to decide (``navigator.manager.watch_service`` asks the history, which
keeps the labels a deleted object last had). Memory for this is one key per
matching object the watcher has seen, and only with a selector.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from loguru import logger

from navigator.resource import Change, ChangeType
from navigator.selectors import LabelSelector

#: What identifies an object for the feed: cluster, kind, namespace, name.
Key = tuple[str, str, str, str]

#: Changes one ``__anext__`` hands out at most: a page's worth, so the consumer never holds much.
BATCH = 500

#: The status a subscription ended by the manager's shutdown gets (``navigator.client`` recognises the text).
SHUTTING_DOWN = ("UNAVAILABLE", "the manager is shutting down")


def key_of(change: Change) -> Key:
    return change.cluster, change.kind, change.namespace, change.name


@dataclass(frozen=True, slots=True)
class WatchFilter:
    """Which changes a watcher wants; ``None`` (or an empty selector) means any."""

    kind: str | None = None
    cluster: str | None = None
    namespace: str | None = None
    name: str | None = None
    selector: LabelSelector | None = None
    #: The clusters the watcher's reader may see (``auth.readers``); ``None``: every one.
    clusters: frozenset[str] | None = None

    def matches_key(self, change: Change) -> bool:
        """Everything but the labels."""
        return (
            (self.kind is None or change.kind == self.kind)
            and (self.cluster is None or change.cluster == self.cluster)
            and (self.clusters is None or change.cluster in self.clusters)
            and (self.namespace is None or change.namespace == self.namespace)
            and (self.name is None or change.name == self.name)
        )


@dataclass(frozen=True, slots=True)
class UnsureDeletion:
    """A DELETED change whose object's last labels the feed does not know; the consumer decides."""

    change: Change


#: What a subscription hands out: changes it knows match, and deletions it cannot judge.
Item = Change | UnsureDeletion


class SubscriptionClosed(Exception):
    """The feed ended a subscription: ``code`` is a gRPC status name, ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Subscription:
    """One watcher's queue: an async iterator of batches of at most ``BATCH`` items, in apply order.

    It raises ``SubscriptionClosed`` once the feed cut it off (too far behind) or
    shut down; ``close()`` (the watcher left) ends it quietly.
    """

    def __init__(self, feed: ChangeFeed, filter: WatchFilter, buffer: int) -> None:
        self.filter = filter
        self.buffer = buffer
        self._feed = feed
        self._pending: deque[Item] = deque()
        self._wake = asyncio.Event()
        self._closed: SubscriptionClosed | None = None
        self._left = False
        #: Keys whose last change this subscription saw matched its selector (selector only).
        self._matching: set[Key] = set()
        #: The most items ever pending at once: never above ``buffer``.
        self.peak_pending = 0

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def closed(self) -> bool:
        return self._left or self._closed is not None

    def offer(self, changes: Sequence[Change]) -> None:
        """Queue the changes this subscription wants, or cut it off if that would pass ``buffer``."""
        if self.closed:
            return
        wanted = self._wanted(changes)
        if not wanted:
            return
        if self.pending + len(wanted) > self.buffer:
            self.cut_off(
                "RESOURCE_EXHAUSTED",
                f"the watch fell more than {self.buffer:,} changes behind (watch.buffer) and was ended: "
                "narrow it (--cluster, --kind, -n, -l) or read faster",
            )
            return
        self._pending.extend(wanted)
        self.peak_pending = max(self.peak_pending, self.pending)
        self._wake.set()

    def _wanted(self, changes: Sequence[Change]) -> list[Item]:
        f = self.filter
        selector = f.selector
        if not selector:
            if f.kind is None and f.cluster is None and f.namespace is None and f.name is None and f.clusters is None:
                return list(changes)
            return [c for c in changes if f.matches_key(c)]
        wanted: list[Item] = []
        matching = self._matching
        for change in changes:
            if not f.matches_key(change):
                continue
            key = key_of(change)
            if change.type is ChangeType.DELETED:
                if change.resource is not None:  # a backend that kept the labels
                    if selector.matches(change.resource.labels):
                        wanted.append(change)
                    matching.discard(key)
                elif key in matching:
                    matching.discard(key)
                    wanted.append(change)
                else:
                    wanted.append(UnsureDeletion(change))
            elif change.resource is not None and selector.matches(change.resource.labels):
                matching.add(key)
                wanted.append(change)
            else:
                matching.discard(key)
        return wanted

    def cut_off(self, code: str, message: str) -> None:
        """End the subscription with a reason; what was pending is dropped now, not when the watcher reads."""
        if self.closed:
            return
        self._closed = SubscriptionClosed(code, message)
        logger.info("watch ended ({}, {} pending at most): {}", code, self.peak_pending, message)
        self._pending.clear()
        self._matching.clear()
        self._wake.set()
        self._feed.discard(self)

    def close(self) -> None:
        """The watcher left: stop queueing, drop what is pending."""
        self._left = True
        self._pending.clear()
        self._matching.clear()
        self._wake.set()
        self._feed.discard(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> list[Item]:
        while True:
            if self._closed is not None:
                raise self._closed
            if self._left:
                raise StopAsyncIteration
            if self._pending:
                pending = self._pending
                count = min(len(pending), BATCH)
                return [pending.popleft() for _ in range(count)]
            self._wake.clear()
            await self._wake.wait()


class ChangeFeed:
    """Fans applied changes out to watchers; a ``Sink``, registered first in the manager's ``SinkFanout``."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._closed = False

    def __len__(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscriptions)

    def __iter__(self) -> Iterator[Subscription]:
        """The open subscriptions (a copy: iterating never races a publish)."""
        return iter(list(self._subscriptions))

    def subscribe(self, filter: WatchFilter, buffer: int) -> Subscription:
        """A new subscription that sees every change published from now on that ``filter`` matches."""
        sub = Subscription(self, filter, buffer)
        if self._closed:
            sub.cut_off(*SHUTTING_DOWN)
        else:
            self._subscriptions.add(sub)
        return sub

    def discard(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    def publish(self, changes: Sequence[Change]) -> None:
        """Hand ``changes`` (one apply's, in order) to every subscription; never waits, never raises."""
        if not changes:
            return
        for sub in list(self._subscriptions):
            try:
                sub.offer(changes)
            except Exception as exc:  # a bug must not break the apply that published
                logger.opt(exception=exc).error("change feed: a watcher failed to take {} changes", len(changes))
                sub.cut_off("INTERNAL", f"the manager failed to filter changes for this watch: {exc}")

    # -- Sink ----------------------------------------------------------------------

    async def send(self, changes: Sequence[Change]) -> None:
        self.publish(changes)

    async def close(self) -> None:
        """End every subscription (watchers see UNAVAILABLE) and refuse new ones."""
        self._closed = True
        for sub in list(self._subscriptions):
            sub.cut_off(*SHUTTING_DOWN)
