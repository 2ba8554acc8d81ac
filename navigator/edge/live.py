"""A FULL state while it is being collected: what a stream may already send (docs/protocol.md, "Open chunk sets").

Kinds are listed in executor threads. After every page a kind's collector hands the
range it added over to the event loop (``call_soon_threadsafe``), where it joins
``pages`` in the order the pages arrived, so that a stream can cut chunks from them
while the listing goes on. Nothing is copied: a page names a slice of the kind's own
list, the one the collection result (and the cached fallback) keeps anyway.

What was sent of an open set cannot be taken back, so anything that changes what a
kind has already handed over *spoils* the open set: a listing that starts again
after it published objects (a retry after an error, an expired continue token), a
kind that ends failed (its error or cached fallback replace what was listed), a
cancelled collection. The stream then sends the finished FULL as a new, closed set.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loguru import logger

from navigator.interfaces import Serializer

if TYPE_CHECKING:
    from navigator.edge.collect import CollectResult


@dataclass(slots=True, frozen=True)
class LivePage:
    """Objects ``start`` to ``end`` of one kind's list, packed with ``serializer``."""

    kind: str
    items: list[bytes]
    start: int
    end: int
    serializer: Serializer

    def __iter__(self) -> Iterator[bytes]:
        return itertools.islice(self.items, self.start, self.end)

    def __len__(self) -> int:
        return self.end - self.start


class LiveFull:
    """The pages a FULL collection has listed so far, and whether they may still go as an open set.

    ``begin`` and ``page`` are called from the listing threads; everything else runs on
    the event loop the collection was started in.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        #: Every page handed over so far, in arrival order (only grows).
        self.pages: list[LivePage] = []
        #: Objects in ``pages``.
        self.objects = 0
        #: Why the open set cannot be finished (empty while it can).
        self.spoiled = ""
        #: The collection ended (the snapshot's results are filled in), or was cancelled.
        self.finished = False
        self.cancelled = False
        #: The loop queues the FULL again when it is collected: whoever sends it now lets go of it.
        self.detached = False
        self._lists: dict[str, tuple[list[bytes], Serializer]] = {}
        self._published: dict[str, int] = {}
        self._changed = asyncio.Event()

    # -- from a listing thread -------------------------------------------------------------

    def begin(self, kind: str, items: list[bytes], serializer: Serializer) -> None:
        """A listing of ``kind`` starts, appending to ``items``."""
        self._call(self._begin, kind, items, serializer)

    def page(self, kind: str, end: int) -> None:
        """The listing of ``kind`` has ``end`` objects in its list now (a page was read)."""
        self._call(self._page, kind, end)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits for these pages any more
            self._loop.call_soon_threadsafe(callback, *args)

    # -- on the event loop -----------------------------------------------------------------

    def _begin(self, kind: str, items: list[bytes], serializer: Serializer) -> None:
        published = self._published.get(kind, 0)
        if published:
            self.spoil(f"the listing of {kind} started again after {published} objects")
        self._lists[kind] = (items, serializer)
        self._published[kind] = 0

    def _page(self, kind: str, end: int) -> None:
        listed = self._lists.get(kind)
        if listed is None:
            return
        start = self._published[kind]
        if end <= start or self.spoiled:
            return
        self.pages.append(LivePage(kind, listed[0], start, end, listed[1]))
        self._published[kind] = end
        self.objects += end - start
        self._notify()

    def spoil(self, why: str) -> None:
        """The open set cannot be finished: the stream sends the whole FULL again once it is collected."""
        if not self.spoiled:
            self.spoiled = why
            logger.info("the full state cannot go on as an open chunk set: {}", why)
            # Nothing reads them any more; a failed attempt's list must not live on through them.
            # (A new list: a worker thread may still hold the old one.)
            self.pages = []
        self._notify()

    def finish(self, results: Mapping[str, CollectResult]) -> None:
        """The collection ended with ``results``: hand over what is left; a failed kind spoils the set."""
        for kind, result in results.items():
            if result.error is not None:
                self.spoil(f"{kind} failed ({result.error.message})")
                continue
            listed = self._lists.get(kind)
            if listed is None or listed[0] is not result.items:
                if result.items:
                    self.spoil(f"the objects of {kind} were not handed over as they were listed")
                continue
            self._page(kind, len(result.items))  # nothing, normally: every page was handed over already
        self.finished = True
        self._notify()

    def detach(self, why: str) -> None:
        """The stream must let go of this FULL now (so that a DELTA can say what is wrong meanwhile); the
        loop queues it again, complete, when its collection ends."""
        self.detached = True
        self.spoil(why)

    def cancel(self) -> None:
        """The collection stopped without a result: whoever waits for it must not wait forever."""
        self.cancelled = True
        self.finished = True
        self.spoil("the collection was cancelled")

    def _notify(self) -> None:
        # A fresh event per change: a waiter holds the one that was current when it looked.
        self._changed.set()
        self._changed = asyncio.Event()

    def changed(self) -> asyncio.Event:
        """Set at the next change (pages, spoiled, finished). Take it right after looking, without an await between."""
        return self._changed
