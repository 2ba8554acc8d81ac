"""The bounded queue between the sync loop and the stream writer.

It holds serializer-independent states, at most ``manager.buffer.max_messages``.
A new FULL snapshot supersedes everything queued before it (it says all of it
again). When the queue is full, ``when_full`` decides: ``drop_oldest`` discards
the oldest state (and asks for a full resync, because what it carried is
lost), ``block`` makes the sync loop wait for the stream.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Literal

from loguru import logger

from navigator.edge.messages import FullSnapshot, Outgoing


class Outbox:
    def __init__(
        self,
        max_messages: int,
        when_full: Literal["drop_oldest", "block"] = "drop_oldest",
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.max_messages = max_messages
        self.when_full = when_full
        #: Called when queued changes were discarded without a FULL replacing them.
        self.on_lost = on_lost
        self._items: deque[Outgoing] = deque()
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self._items)

    async def put(self, item: Outgoing) -> None:
        async with self._changed:
            if isinstance(item, FullSnapshot):
                self._items.clear()
            while len(self._items) >= self.max_messages:
                if self.when_full == "block":
                    await self._changed.wait()
                    continue
                oldest = self._items.popleft()
                logger.warning(
                    "outgoing buffer full ({} states): dropped the oldest ({}); a full resync follows",
                    self.max_messages,
                    "FULL" if isinstance(oldest, FullSnapshot) else "DELTA",
                )
                if self.on_lost is not None:
                    self.on_lost()
            self._items.append(item)
            self._changed.notify_all()

    async def get(self) -> Outgoing:
        async with self._changed:
            while not self._items:
                await self._changed.wait()
            item = self._items.popleft()
            self._changed.notify_all()
            return item

    async def drained(self) -> None:
        """Wait until the stream has taken everything queued."""
        async with self._changed:
            while self._items:
                await self._changed.wait()

    async def put_first(self, item: Outgoing) -> None:
        """Queue ``item`` ahead of everything (a state a dropped stream may not have delivered),
        unless a FULL queued since supersedes it."""
        async with self._changed:
            if any(isinstance(queued, FullSnapshot) for queued in self._items):
                return
            self._items.appendleft(item)
            self._changed.notify_all()

    def unget(self, item: Outgoing) -> None:
        """Put back at the front what ``get`` handed to a taker that could not keep it (cancelled at
        that moment); unless a FULL queued since supersedes it. Synchronous, for a cancellation handler:
        the only getter is the one giving it back, and the queue only grows, so nobody waits for this."""
        if not any(isinstance(queued, FullSnapshot) for queued in self._items):
            self._items.appendleft(item)

    async def starts_with_full(self) -> bool:
        """After a reconnect: keep the queue if it begins with a FULL (all after it builds on it), else clear it.

        Returns whether a FULL is queued; if not, the caller must ask for one.
        """
        async with self._changed:
            if self._items and isinstance(self._items[0], FullSnapshot):
                return True
            self._items.clear()
            self._changed.notify_all()
            return False
