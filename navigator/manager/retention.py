"""History retention: old changes are pruned in the background, through the storage thread.

Pruning keeps, per object, the latest change before the cutoff, so a query at
any time inside the retention window still sees every object that existed then.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from loguru import logger

from navigator.config.manager import HistorySection
from navigator.interfaces import StorageBackend
from navigator.manager.apply import StorageWorker


class Retention:
    """Runs ``prune_history`` every ``prune_interval`` while the manager runs."""

    def __init__(
        self,
        history: HistorySection,
        backend: StorageBackend,
        worker: StorageWorker,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.history = history
        self.backend = backend
        self.worker = worker
        self._clock = clock
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.history.enabled and self._task is None:
            self._task = asyncio.create_task(self._run(), name="navigator-history-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def prune(self) -> int:
        cutoff = datetime.fromtimestamp(self._clock() - self.history.retention, UTC)
        pruned = await self.worker.call(self.backend.prune_history, cutoff, self.history.max_rows)
        if pruned:
            logger.info("history: pruned {} changes applied before {}", pruned, cutoff.isoformat())
        return pruned

    async def _run(self) -> None:
        while True:
            try:
                await self.prune()
            except Exception as exc:  # a failed prune is retried next round; history only grows meanwhile
                logger.warning("history: pruning failed: {}", exc)
            await asyncio.sleep(self.history.prune_interval)
