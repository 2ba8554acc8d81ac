"""Change detection, once, in the core: what a state changes, decided the same way for every backend.

Per cluster the reconciler holds an index of key -> (uid, resourceVersion,
payload digest), loaded from the backend when an edge claims the cluster. Each
FULL (chunked or not) or DELTA state becomes ADDED / MODIFIED / DELETED
changes, and the backend gets one transactional ``apply`` of upserts, deletions
and history. The rules, for every backend alike:

- a key seen twice in one state: the last copy wins;
- a new uid at a known key: the old object is DELETED, the new one ADDED;
- a new resourceVersion, or the same one with a different payload or labels: MODIFIED,
  with the top-level fields that differ (a payload that only looks different,
  e.g. after a serializer change, is stored with its new digest and reported as nothing);
- a FULL state deletes the objects of the kinds it covers that it does not hold;
  kinds it does not cover (failed without a fallback) are left alone;
- changes come in key order for a FULL state (a snapshot has no order of its own;
  in key order a first ingest's history is the stored rows' order) and in the
  state's order for a DELTA, a re-created object's DELETED just before its ADDED;
  then the deletions in key order: the same order on every backend.

Each change carries when the edge observed it: in a DELTA the object's own
``observed_at`` (protocol 2), else the state's timestamp, which is also what
every change of a FULL gets (a FULL has no per-object times, and its objects
are not looked at for one). The cluster record saved with the state says how
fresh the copy is: ``fresh_as_of`` (the state's timestamp) and ``lag`` (from the
newest observation among the state's changes to ``applied_at``; a state that
changes nothing leaves the previous lag).

Unchanged objects are never decoded: they cost a dict lookup and a digest of
their payload bytes. Written ones are not decoded either (JSON payloads are
validated and stored as they came); only a MODIFIED object is, to name the
fields that changed. Everything here runs on the manager's storage thread,
which is also the only writer, so the index needs no lock.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from loguru import logger
from xxhash import xxh3_128_hexdigest as _xxh3_128

from navigator.gc_pause import gc_paused
from navigator.interfaces import ClusterRecord, Serializer, StorageBackend
from navigator.interfaces.serializer import payload_json
from navigator.interfaces.storage import FirstStateWrite, FirstStateWriter
from navigator.manager import partial
from navigator.manager.validation import InvalidState, StateSet, WireColumns, serialize
from navigator.resource import Change, ChangeType, Resource, ResourceKey, StoredObject
from navigator.v1 import sync_pb2

Key = tuple[str, str, str]


class Known(NamedTuple):
    uid: str
    resource_version: str
    digest: str


def digest(wire: sync_pb2.Resource) -> str:
    """Of the whole wire record (labels sorted): equal digests mean nothing a query shows has changed.

    Hashing the deterministic serialization is 2.4x faster than walking the labels map
    in Python; it covers the key and resourceVersion too, which only ever differ when
    the object is written anyway. XXH3-128 rather than BLAKE2b: 8x faster per object
    (measured 0.05 s against 0.40 s for 150,000 pods) and, at 128 bits, as unlikely to
    collide by chance; nothing here needs a cryptographic hash, the edge sending the
    records is the one whose copy they describe. A digest stored by an older manager
    (BLAKE2b) differs once: the object is decoded, found equal and re-stamped, silently.
    """
    return _xxh3_128(serialize(wire))


def digest_all(wires: Iterable[sync_pb2.Resource]) -> list[str]:
    """``digest`` of each, in C loops (an unchanged resync digests every object it gets)."""
    return list(map(_xxh3_128, map(serialize, wires)))


def changed_fields(old: Resource, new: Resource) -> tuple[str, ...]:
    """Top-level ``data`` fields whose values differ, plus ``labels`` when they do."""
    fields = sorted(k for k in old.data.keys() | new.data.keys() if old.data.get(k) != new.data.get(k))
    if old.labels != new.labels:
        fields.append("labels")
    return tuple(fields)


@dataclass(slots=True)
class _Plan:
    """What one state changes, before anything is written."""

    #: In key order (FULL) or the state's order (DELTA): (key, wire copy, digest, whether the key or uid
    #: is new, the object when staged already).
    written: list[tuple[Key, sync_pb2.Resource, str, bool, StoredObject | None]]
    #: In key order, with the deletion's own observation time when the wire carries one.
    deleted: list[tuple[Key, Known, datetime | None]]


@dataclass(slots=True)
class Staged:
    """A chunk set's objects, planned chunk by chunk as the chunks arrive (``Reconciler.stage``),
    so that its apply on the last chunk is left with little more than the writes.

    Only objects that differ from the index are kept (decoded, ready to store); of the
    others only their keys, for the FULL's deletions.
    """

    cluster: str
    #: The cluster's index the chunks were compared with: the apply re-plans nothing, so it must
    #: still be the one in use then.
    index: dict[Key, Known]
    #: Every key the set holds so far.
    incoming: set[Key] = dataclasses.field(default_factory=set)
    #: The objects to write, by key: (key, wire copy, digest, whether the key or uid is new, the object).
    written: dict[Key, tuple[Key, sync_pb2.Resource, str, bool, StoredObject | None]] = dataclasses.field(
        default_factory=dict
    )
    #: The first key the set held twice (the last copy wins, as in any state).
    repeated: Key | None = None
    #: A cluster's first state written as it arrives, on a backend that can (``FirstStateWriter``):
    #: each chunk's objects go to the database when staged, and the apply only finishes the write.
    writer: FirstStateWrite | None = None


class Reconciler:
    """The core's change detection over one storage backend."""

    def __init__(self, backend: StorageBackend, history: bool = True) -> None:
        self.backend = backend
        self.history = history
        self._index: dict[str, dict[Key, Known]] = {}

    # -- the index -----------------------------------------------------------------

    def load(self, cluster: str) -> int:
        """(Re)read the cluster's index from storage: at every claim, since another manager may have written."""
        self._index[cluster] = {
            (v.kind, v.namespace, v.name): Known(v.uid, v.resource_version, v.digest)
            for v in self.backend.versions(cluster)
        }
        return len(self._index[cluster])

    def forget(self, cluster: str) -> None:
        """Drop the cluster's index, read again at its next use: what it says may not have been stored
        (a group commit that failed after this reconciler's apply had returned)."""
        self._index.pop(cluster, None)

    def held(self, cluster: str) -> list[sync_pb2.ResourceKey]:
        """Every object held for ``cluster``, for an edge that sends its FULL against them (protocol 2)."""
        Wire = sync_pb2.ResourceKey
        return [
            Wire(kind=k[0], namespace=k[1], name=k[2], uid=v.uid, resource_version=v.resource_version)
            for k, v in self._cluster_index(cluster).items()
        ]

    def _cluster_index(self, cluster: str) -> dict[Key, Known]:
        if cluster not in self._index:
            self.load(cluster)
        return self._index[cluster]

    # -- a chunk set, as it arrives ---------------------------------------------------

    def stage(
        self,
        cluster: str,
        staged: Staged | None,
        resources: list[sync_pb2.Resource],
        serializer: Serializer,
        more: bool = False,
        columns: WireColumns | None = None,
    ) -> Staged:
        """Plan one chunk of a FULL set against the index, before the set is complete (on the storage
        thread, like ``apply``): what the set's apply would do per object, done while later chunks are
        still on their way (``more``: the set has chunks to come; ``columns``: the resources' fields,
        when the caller read them). Raises ``InvalidState`` for a payload that does not decode.

        Nothing is stored before the set's apply. A cluster's first state on a backend that can
        (``FirstStateWriter``) is written chunk by chunk as it is staged, where no reader sees it
        until the apply commits it: the database inserts chunk k while k+1 is on its way.
        """
        with gc_paused():
            index = self._cluster_index(cluster)
            if staged is None:
                staged = Staged(cluster, index)
                if more and not index:
                    staged.writer = self._begin_first_state(cluster)
            if columns is None:
                columns = WireColumns.of(resources)
            try:
                return self._stage(staged, index, resources, serializer, columns)
            except BaseException:
                if staged.writer is not None:  # the set is discarded: nothing of it is kept
                    staged.writer.abort()
                    staged.writer = None
                raise

    def _stage(
        self,
        staged: Staged,
        index: dict[Key, Known],
        resources: list[sync_pb2.Resource],
        serializer: Serializer,
        columns: WireColumns,
    ) -> Staged:
        _check_staged_against(staged, index)
        keys = list(zip(columns.kinds, columns.namespaces, columns.names, strict=True))
        incoming, chunk = staged.incoming, dict(zip(keys, resources, strict=True))
        if len(chunk) != len(keys) or not incoming.isdisjoint(chunk):  # the last copy of a key wins
            if staged.repeated is None:
                staged.repeated = _first_repeated(keys, incoming)
            for key in incoming & chunk.keys():
                staged.written.pop(key, None)
            keys, resources = list(chunk), list(chunk.values())
            columns = WireColumns.of(resources)
        incoming.update(keys)
        digests = list(map(_xxh3_128, columns.encoded))
        versions = zip(columns.uids, [w.resource_version for w in resources], digests, strict=True)
        index_get = index.get
        differs = map(operator.ne, map(index_get, keys), versions)
        decode = _decoder(serializer)
        written = staged.written
        chunk_objects: list[StoredObject] = []
        for i in itertools.compress(range(len(keys)), differs):
            key, wire, dig, known = keys[i], resources[i], digests[i], index_get(keys[i])
            stored = _stored(key, wire, dig, decode)
            written[key] = (key, wire, dig, known is None or known.uid != wire.uid, stored)
            chunk_objects.append(stored)
        writer = staged.writer
        if writer is not None:
            if staged.repeated is not None:  # refused as a whole: a FULL holds each key once
                writer.abort()
                staged.writer = None
            else:
                writer.write(chunk_objects)
        return staged

    def _begin_first_state(self, cluster: str) -> FirstStateWrite | None:
        backend = self.backend
        if not isinstance(backend, FirstStateWriter):
            return None
        try:
            return backend.begin_first_state(cluster)
        except Exception as exc:  # written when the set is complete instead, as any other state
            logger.warning("storage: cannot write the first state of {} as it arrives: {}", cluster, exc)
            return None

    # -- one state -----------------------------------------------------------------

    def apply(
        self,
        record: ClusterRecord,
        state: StateSet,
        serializer: Serializer,
        applied_at: datetime,
        observed_at: datetime | None = None,
        record_cluster: bool = False,
    ) -> list[Change]:
        """Decide what ``state`` changes, write it in one transaction, return the changes.

        ``observed_at`` stands in for the state's timestamp (``state.observed_at``) when given.
        Raises ``InvalidState`` when a payload that must be stored does not decode (nothing is
        written) and whatever the backend raised (nothing is written either).
        """
        return self.apply_with_record(record, state, serializer, applied_at, observed_at, record_cluster)[1]

    def apply_with_record(
        self,
        record: ClusterRecord,
        state: StateSet,
        serializer: Serializer,
        applied_at: datetime,
        observed_at: datetime | None = None,
        record_cluster: bool = False,
    ) -> tuple[ClusterRecord, list[Change]]:
        """``apply``, also returning the cluster record as saved: ``record`` with the copy's freshness."""
        with gc_paused():
            try:
                return self._apply(record, state, serializer, applied_at, observed_at, record_cluster)
            finally:
                abandon(state)  # nothing once finished; else nothing of it is kept

    def _apply(
        self,
        record: ClusterRecord,
        state: StateSet,
        serializer: Serializer,
        applied_at: datetime,
        observed_at: datetime | None,
        record_cluster: bool,
    ) -> tuple[ClusterRecord, list[Change]]:
        cluster = record.cluster
        index = self._cluster_index(cluster)
        decode = _decoder(serializer)
        if state.full and not index:
            return self._first_state(record, state, index, decode, applied_at, observed_at, record_cluster)
        plan = self._plan(index, state)
        abandon(state)  # written as it arrived, yet not a first state after all: written whole here
        old_objects = self._old_objects(cluster, [entry[0] for entry in plan.written if not entry[3]])
        state_time = observed_at if observed_at is not None else state.observed_at
        # Only a DELTA's objects may carry their own time (a FULL's never do: not looked at).
        own_times = not state.full

        changes: list[Change] = []
        upserts: list[StoredObject] = []
        updates: dict[Key, Known | None] = {}
        newest: datetime | None = None

        def change(key: Key, kind: ChangeType, uid: str, old_rv: str | None, when: datetime | None,
                   new: Resource | None = None, fields: tuple[str, ...] = ()) -> None:  # fmt: skip
            changes.append(
                Change(
                    cluster, key[0], key[1], key[2], uid, kind, old_rv,
                    new.resource_version if new is not None else None,
                    applied_at=applied_at, observed_at=when, resource=new, changed_fields=fields,
                )
            )  # fmt: skip

        added = ChangeType.ADDED
        # The hot loop (every object of a first ingest): names bound locally, arguments positional.
        known_version, new_change = Known, Change
        add_upsert, add_change, index_get = upserts.append, changes.append, index.get
        # Changes in the plan's order (a re-creation's DELETED just before its ADDED), then deletions.
        for key, wire, dig, is_new, stored in plan.written:
            uid, rv = wire.uid, wire.resource_version
            if stored is None:
                stored = _stored(key, wire, dig, decode)
            new = stored.resource
            add_upsert(stored)
            updates[key] = known_version(uid, rv, dig)
            was = index_get(key)
            when = _observed(wire, state_time) if own_times else state_time
            if is_new:
                if was is not None:  # a new uid at a known key: re-created
                    change(key, ChangeType.DELETED, was.uid, was.resource_version, when)
                add_change(new_change(cluster, key[0], key[1], key[2], uid, added, None, rv, applied_at, when, new))
            else:
                assert was is not None
                before = old_objects.get(key)
                fields = changed_fields(before, new) if before is not None else ("data",)
                if not fields and new.resource_version == was.resource_version:
                    continue  # stored with its new digest, reported as nothing
                change(key, ChangeType.MODIFIED, new.uid, was.resource_version, when, new, fields)
            if own_times and when is not None and (newest is None or when > newest):
                newest = when
        for key, old, when in plan.deleted:
            when = when or state_time
            change(key, ChangeType.DELETED, old.uid, old.resource_version, when)
            updates[key] = None
            if when is not None and (newest is None or when > newest):
                newest = when
        if not own_times and changes:
            newest = state_time

        saved = dataclasses.replace(
            record,
            fresh_as_of=state_time if state_time is not None else record.fresh_as_of,
            lag=(applied_at - newest).total_seconds() if newest is not None else record.lag,
        )
        deletions = [ResourceKey(k[0], k[1], k[2], v.uid) for k, v, _ in plan.deleted]
        self.backend.apply(
            saved, upserts, deletions, changes if self.history else None, record_cluster and self.history
        )
        for key, known in updates.items():
            if known is None:
                index.pop(key, None)
            else:
                index[key] = known
        return saved, changes

    def _first_state(
        self,
        record: ClusterRecord,
        state: StateSet,
        index: dict[Key, Known],
        decode: Callable[[sync_pb2.Resource], bytes],
        applied_at: datetime,
        observed_at: datetime | None,
        record_cluster: bool,
    ) -> tuple[ClusterRecord, list[Change]]:
        """``_apply`` of a FULL state to a cluster that holds nothing (its first ingest, or after
        everything was deleted): every object is ADDED at the state's time, nothing is deleted.
        The same outcome, column by column in C loops rather than one object at a time; a state
        written as it arrived (``Staged.writer``) is committed while its changes are built."""
        cluster = record.cluster
        when = observed_at if observed_at is not None else state.observed_at
        keep = record_cluster and self.history
        staged = state.staged
        finishing: Future[None] | None = None
        if staged is not None and staged.writer is not None:  # written already: the database commits meanwhile
            _check_staged_against(staged, index)
            count = len(staged.written)
            saved = _freshened(record, applied_at, when, count)
            finishing = _finisher().submit(staged.writer.finish, saved, count, applied_at, when, self.history, keep)
        try:
            written = self._plan(index, state).written
            upserts = [e[4] if e[4] is not None else _stored(e[0], e[1], e[2], decode) for e in written]
            resources = list(map(_RESOURCE, upserts))
            keys = list(map(_first, written))
            uids = list(map(_UID, resources))
            versions = list(map(_VERSION, resources))
            changes = list(
                map(
                    Change, itertools.repeat(cluster), map(_KIND, keys), map(_NAMESPACE, keys), map(_NAME, keys),
                    uids, itertools.repeat(ChangeType.ADDED), itertools.repeat(None), versions,
                    itertools.repeat(applied_at), itertools.repeat(when), resources,
                )
            )  # fmt: skip
            known = list(map(Known, uids, versions, map(_DIGEST, written)))
            if finishing is not None:
                finishing.result()
            else:
                saved = _freshened(record, applied_at, when, len(upserts))
                self.backend.apply(saved, upserts, [], changes if self.history else None, keep)
        except BaseException:
            if finishing is not None and finishing.exception() is None:  # stored, yet not known here
                self.forget(cluster)
            raise
        self._index[cluster].update(zip(keys, known, strict=True))
        return saved, changes

    def _plan(self, index: Mapping[Key, Known], state: StateSet) -> _Plan:
        """Column by column: each object's (uid, resourceVersion, digest) is compared with the index's
        in C loops (``map``, ``compress``), and only the objects that differ are looked at one by one,
        so that an unchanged resync of 150,000 objects is a handful of passes, not a Python loop."""
        staged = state.staged
        if staged is not None:
            return self._staged_plan(index, state, staged)
        resources = state.resources
        keys = [(wire.kind, wire.namespace, wire.name) for wire in resources]
        incoming = dict(zip(keys, resources, strict=True))  # the last copy of a key wins
        if len(incoming) != len(keys):
            keys, resources = list(incoming), list(incoming.values())
        digests = digest_all(resources)
        versions = list(
            zip([w.uid for w in resources], [w.resource_version for w in resources], digests, strict=True)
        )
        index_get = index.get
        # A Known equals the plain tuple of the same three strings; None (not held) equals none.
        differs = map(operator.ne, map(index_get, keys), versions)
        written: list[tuple[Key, sync_pb2.Resource, str, bool, StoredObject | None]] = []
        for i in itertools.compress(range(len(keys)), differs):
            key, known = keys[i], index_get(keys[i])
            written.append((key, resources[i], digests[i], known is None or known.uid != versions[i][0], None))
        if state.full:
            written.sort(key=_first)  # keys are unique: the wire copies are never compared
        return _Plan(written, self._deleted(index, state, incoming.keys()))

    def _staged_plan(self, index: Mapping[Key, Known], state: StateSet, staged: Staged) -> _Plan:
        """The plan of a chunk set staged as it arrived: its objects are already compared and built."""
        _check_staged_against(staged, index)
        written = sorted(staged.written.values(), key=_first)  # keys are unique: wires never compared
        return _Plan(written, self._deleted(index, state, staged.incoming))

    @staticmethod
    def _deleted(
        index: Mapping[Key, Known], state: StateSet, incoming: AbstractSet[Key]
    ) -> list[tuple[Key, Known, datetime | None]]:
        """What the state deletes, in key order: a FULL what it does not hold of the kinds it covers
        (unless sent against versions), else its deletions of objects held and not upserted with them."""
        deleted: list[tuple[Key, Known, datetime | None]] = []
        if state.full and not state.against_versions:
            covered = partial.covered_kinds(state)
            held = index.keys() - incoming
            deleted = sorted((k, index[k], None) for k in held if k[0] in covered)
        else:
            for gone in state.deletions:
                key = (gone.kind, gone.namespace, gone.name)
                known = index.get(key)
                if key in incoming or known is None or (gone.uid and gone.uid != known.uid):
                    continue  # already gone, re-created since, or upserted in the same delta
                deleted.append((key, known, _observed(gone, None)))
            deleted.sort(key=lambda item: item[0])
        return deleted

    def _old_objects(self, cluster: str, modified: Iterable[Key]) -> dict[Key, Resource]:
        keys = [ResourceKey(*key) for key in modified]
        if not keys:
            return {}
        return {(r.kind, r.namespace, r.name): r for r in self.backend.read(cluster, keys)}


def _stored(key: Key, wire: sync_pb2.Resource, dig: str, decode: Callable[[sync_pb2.Resource], bytes]) -> StoredObject:
    """The object to write for ``wire``: its payload checked (``decode``), nothing parsed."""
    labels = wire.labels
    resource = Resource.from_json(
        key[0], key[1], key[2], wire.uid, wire.resource_version, {k: labels[k] for k in labels}, decode(wire)
    )
    return StoredObject(resource, dig)


def abandon(state: StateSet) -> None:
    """Nothing of ``state`` will be applied: what its set's chunks wrote already is not kept
    (``Staged.writer``); a no-op for a state whose apply finished it. Never waits."""
    staged = state.staged
    if staged is not None and staged.writer is not None:
        staged.writer.abort()


def _freshened(record: ClusterRecord, applied_at: datetime, when: datetime | None, changed: int) -> ClusterRecord:
    """``record`` as saved with a FULL state taken at ``when`` that changed ``changed`` objects."""
    return dataclasses.replace(
        record,
        fresh_as_of=when if when is not None else record.fresh_as_of,
        lag=(applied_at - when).total_seconds() if changed and when is not None else record.lag,
    )


def _check_staged_against(staged: Staged, index: Mapping[Key, Known]) -> None:
    """A set is staged against one reading of the cluster's index: the apply re-plans nothing."""
    if staged.index is not index:
        raise InvalidState(
            f"cluster {staged.cluster}: the stored copy was read again while the set was arriving; send it again"
        )


def _first_repeated(keys: Iterable[Key], before: AbstractSet[Key]) -> Key | None:
    seen: set[Key] = set()
    for key in keys:
        if key in before or key in seen:
            return key
        seen.add(key)
    return None


def _first(item: tuple[Key, sync_pb2.Resource, str, bool, StoredObject | None]) -> Key:
    return item[0]


_DIGEST = operator.itemgetter(2)
_FINISHER: ThreadPoolExecutor | None = None


def _finisher() -> ThreadPoolExecutor:
    """The thread that commits first states written as they arrived (``FirstStateWrite.finish``)."""
    global _FINISHER
    if _FINISHER is None:
        _FINISHER = ThreadPoolExecutor(1, thread_name_prefix="navigator-first-state")
    return _FINISHER
_KIND, _NAMESPACE, _NAME = operator.itemgetter(0), operator.itemgetter(1), operator.itemgetter(2)
_RESOURCE = operator.attrgetter("resource")
_UID = operator.attrgetter("uid")
_VERSION = operator.attrgetter("resource_version")


def _observed(wire: sync_pb2.Resource | sync_pb2.ResourceKey, otherwise: datetime | None) -> datetime | None:
    """When the edge observed ``wire`` (protocol 2), else ``otherwise`` (a protocol 1 edge sets no time)."""
    if not wire.HasField("observed_at"):
        return otherwise
    try:
        return wire.observed_at.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        where = f"{wire.kind}/{wire.namespace + '/' if wire.namespace else ''}{wire.name}"
        raise InvalidState(f"{where}: observed_at is not a valid time: {exc}") from None


def _decoder(serializer: Serializer) -> Callable[[sync_pb2.Resource], bytes]:
    to_json = payload_json(serializer)

    def decode(wire: sync_pb2.Resource) -> bytes:
        try:
            return to_json(wire.payload)
        except ValueError as exc:
            where = f"{wire.kind}/{wire.namespace + '/' if wire.namespace else ''}{wire.name}"
            raise InvalidState(
                f"resource {where}: payload cannot be decoded ({serializer.name}): {exc}"
            ) from None

    return decode
