"""A state is stamped applied when the storage thread stores it, not when it arrived."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from navigator_plugins.serializers.json import JsonSerializer
from navigator_plugins.storage.sqlite import create

from navigator.interfaces import ClusterRecord
from navigator.manager.apply import StorageWorker, apply_state
from navigator.manager.reconciler import Reconciler
from navigator.testing.storage_conformance import make, state


async def test_last_sync_is_read_on_the_storage_thread_when_the_apply_starts(tmp_path: Path) -> None:
    backend = create({"path": str(tmp_path / "navigator.db")})
    backend.migrate()
    worker = StorageWorker()
    release = threading.Event()
    worker_busy = worker.call(release.wait, 10)  # another cluster's long apply holds the queue
    read_on: list[str] = []
    stamp = datetime(2026, 12, 3, 12, 0, 5, tzinfo=UTC)

    def clock() -> datetime:
        read_on.append(threading.current_thread().name)
        return stamp

    try:
        applying = apply_state(worker, Reconciler(backend), ClusterRecord("east"), state(make("a")),
                               JsonSerializer(), clock)  # fmt: skip
        release.set()
        await worker_busy
        record, changes = await applying
    finally:
        worker.shutdown()
        backend.close()
    assert read_on == [read_on[0]] and read_on[0].startswith("navigator-storage")
    assert record.last_sync == stamp and record.last_seen == stamp
    assert [c.applied_at for c in changes] == [stamp]
