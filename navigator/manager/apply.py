"""Applying a validated state: decode payloads, write through the backend on one thread, report changes.

Storage calls run on a single dedicated worker thread: the backend sees one
writer at a time (so applies from different edges never interleave) and the
event loop keeps serving streams and queries while a big snapshot commits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar, overload

from navigator.interfaces import ClusterRecord, Serializer, StorageBackend
from navigator.manager import partial
from navigator.manager.validation import InvalidState, StateSet
from navigator.resource import Change, Resource, ResourceKey
from navigator.v1 import sync_pb2

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


class LazyResource(Resource):
    """A resource whose ``data`` is decoded from its payload only when a backend reads it.

    Backends compare uid and resource_version first and read ``data`` only for
    what they write, so an unchanged object in a resync is never decoded: a
    150,000-pod resync costs its comparisons, not 150,000 payload decodes.
    """

    __slots__ = ("_data", "_decode", "_payload")

    def __init__(self, wire: sync_pb2.Resource, decode: Callable[[sync_pb2.Resource], dict[str, Any]]) -> None:
        self.kind = wire.kind
        self.namespace = wire.namespace
        self.name = wire.name
        self.uid = wire.uid
        self.resource_version = wire.resource_version
        self.labels = dict(wire.labels)
        self._payload = wire
        self._decode = decode
        self._data: dict[str, Any] | None = None

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._decode(self._payload)
        return self._data

    @data.setter
    def data(self, value: dict[str, Any]) -> None:
        self._data = value


class DecodedResources(Sequence[Resource]):
    """The wire resources of a state as ``Resource`` objects, decoding payloads lazily.

    A payload that does not decode raises ``InvalidState`` when read; it is also
    kept in ``error`` because a backend may wrap whatever its iteration raised.
    """

    def __init__(self, items: Sequence[sync_pb2.Resource], serializer: Serializer) -> None:
        self._items = items
        self._serializer = serializer
        self.error: InvalidState | None = None

    def __len__(self) -> int:
        return len(self._items)

    @overload
    def __getitem__(self, index: int) -> Resource: ...
    @overload
    def __getitem__(self, index: slice) -> list[Resource]: ...
    def __getitem__(self, index: int | slice) -> Resource | list[Resource]:
        if isinstance(index, slice):
            return [LazyResource(r, self._decode) for r in self._items[index]]
        return LazyResource(self._items[index], self._decode)

    def __iter__(self) -> Iterator[Resource]:
        decode = self._decode
        for item in self._items:
            yield LazyResource(item, decode)

    def _decode(self, r: sync_pb2.Resource) -> dict[str, Any]:
        try:
            return self._serializer.decode(r.payload)
        except ValueError as exc:
            where = f"{r.kind}/{r.namespace + '/' if r.namespace else ''}{r.name}"
            self.error = InvalidState(f"resource {where}: payload cannot be decoded ({self._serializer.name}): {exc}")
            raise self.error from None


async def apply_state(
    worker: StorageWorker,
    backend: StorageBackend,
    record: ClusterRecord,
    state: StateSet,
    serializer: Serializer,
    now: datetime,
) -> tuple[ClusterRecord, list[Change]]:
    """Persist ``state`` in one transaction; returns the updated cluster record and what changed.

    Raises ``InvalidState`` when a payload does not decode (nothing stored) and
    whatever the backend raised when it failed (nothing stored either).
    """
    updated = dataclasses.replace(
        record,
        last_sync=now,
        last_seen=now,
        last_sequence=state.sequence,
        errors=partial.merge_errors(record.errors, state, now),
    )
    resources = DecodedResources(state.resources, serializer)
    try:
        if state.full:
            changes = await worker.call(backend.apply_snapshot, updated, partial.covered_kinds(state), resources)
        else:
            deletions = [ResourceKey(k.kind, k.namespace, k.name, k.uid) for k in state.deletions]
            changes = await worker.call(backend.apply_delta, updated, resources, deletions)
    except InvalidState:
        raise
    except Exception:
        if resources.error is not None:
            raise resources.error from None
        raise
    return updated, changes
