"""Applying a validated state: the reconciler decides what changed, the backend writes it, on one thread.

Storage calls run on a single dedicated worker thread: the backend sees one
writer at a time (so applies from different edges never interleave, and the
reconciler's index needs no lock) and the event loop keeps serving streams and
queries while a big snapshot commits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from navigator.interfaces import ClusterRecord, Serializer
from navigator.manager import partial
from navigator.manager.reconciler import Reconciler
from navigator.manager.validation import StateSet
from navigator.resource import Change

T = TypeVar("T")


class StorageWorker:
    """The one thread every storage write (and the reads that must follow them) goes through."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="navigator-storage")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True)


def record_status_changed(record: ClusterRecord, state: StateSet) -> bool:
    """Whether the cluster's errors change with this state: worth a row in the history at once."""
    return {e.kind for e in record.errors} != {e.kind for e in state.errors} or bool(
        {e.kind for e in record.errors} & set(state.kinds)
    )


async def apply_state(
    worker: StorageWorker,
    reconciler: Reconciler,
    record: ClusterRecord,
    state: StateSet,
    serializer: Serializer,
    clock: Callable[[], datetime],
    record_cluster: bool = False,
) -> tuple[ClusterRecord, list[Change]]:
    """Persist ``state`` in one transaction; returns the updated cluster record and what changed.

    The record comes back as saved, with the copy's freshness (``fresh_as_of``, ``lag``:
    see ``Reconciler``). The time applied (``last_sync``, the changes' ``applied_at``) is read from ``clock``
    on the storage thread when the apply starts, not when the state arrived: a state
    that waited in the queue behind other clusters' applies is as fresh as it is stored.
    Raises ``InvalidState`` when a payload does not decode (nothing stored) and
    whatever the backend raised when it failed (nothing stored either).
    """

    def stamped() -> tuple[ClusterRecord, list[Change]]:
        now = clock()
        updated = dataclasses.replace(
            record,
            last_sync=now,
            last_seen=now,
            last_sequence=state.sequence,
            errors=partial.merge_errors(record.errors, state, now),
        )
        return reconciler.apply_with_record(updated, state, serializer, now, state.observed_at, record_cluster)

    return await worker.call(stamped)
