"""Checks on what an edge sends, each failure a message that names the problem.

Everything here is pure: no storage, no I/O. A failed check becomes an
``INVALID`` ack (or a ``MALFORMED`` rejection for ``Identify``); nothing stored
changes and the stream stays open.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from google.protobuf.timestamp_pb2 import Timestamp

from navigator.config.manager import LimitsSection
from navigator.manager import partial
from navigator.protocol import SUPPORTED_PROTOCOL_VERSIONS, cluster_id_problem
from navigator.v1 import sync_pb2

if TYPE_CHECKING:
    from navigator.manager.reconciler import Staged

#: The largest sequence the manager keeps: stores hold it as a signed 64-bit integer.
MAX_SEQUENCE = 2**63 - 1
#: The longest sync interval an edge may announce (one day); 0 means the default (30 s).
MAX_SYNC_INTERVAL = 86_400.0
#: Bounds on Identify fields that the manager echoes in its logs and answers.
MAX_EDGE_ID_BYTES = 253
MAX_SERIALIZERS = 16
MAX_NAME_BYTES = 63
MAX_KIND_BYTES = 253
#: Bounds on an object's key (Kubernetes allows 63/253; room for other sources) and on
#: everything of it but the payload (labels, uid, resourceVersion, times), in bytes.
MAX_OBJECT_NAME = 1024
MAX_OBJECT_OVERHEAD = 64 * 1024
#: How much of a client's value a message quotes.
ECHO_CHARS = 64


_DEFAULTS = LimitsSection()



class InvalidState(ValueError):
    """A ClusterState (or chunk set) that must not be applied; the message says why."""


def echo(value: str) -> str:
    """``value`` quoted for a message or log line, cut to its first ``ECHO_CHARS`` characters.

    Whatever an edge sent can be megabytes: quoting it whole would let one client fill the
    logs and every answer that repeats it.
    """
    if len(value) <= ECHO_CHARS:
        return repr(value)
    return f"{value[:ECHO_CHARS]!r}… ({len(value.encode(errors='replace'))} bytes)"


def clip(value: str) -> str:
    """Like ``echo``, unquoted: for names that read as words (kinds, object paths)."""
    if len(value) <= ECHO_CHARS:
        return value
    return f"{value[:ECHO_CHARS]}… ({len(value.encode(errors='replace'))} bytes)"


def cut_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    data = text.encode(errors="replace")
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore")


def unsupported_protocol(identify: sync_pb2.Identify) -> str | None:
    """Why this manager cannot speak the edge's protocol version, or ``None``: refused as
    ``UNSUPPORTED`` (an edge too new or too old), not as a malformed Identify."""
    if identify.protocol_version in SUPPORTED_PROTOCOL_VERSIONS:
        return None
    speaks = ", ".join(map(str, SUPPORTED_PROTOCOL_VERSIONS))
    return f"unsupported protocol_version {identify.protocol_version} (this manager speaks {speaks})"


def check_identify(identify: sync_pb2.Identify, limits: LimitsSection | None = None) -> str | None:
    """The problem with an ``Identify``, or ``None`` when it is well formed.

    The size comes first: an oversized Identify is refused before any of its values is
    looked at, and no message here quotes more than ``ECHO_CHARS`` of a value.
    """
    limit = (limits or _DEFAULTS).max_identify_bytes
    if (size := identify.ByteSize()) > limit:
        return f"the Identify is {size} bytes, more than limits.max_identify_bytes ({limit})"
    if len(identify.cluster_id) > MAX_NAME_BYTES:
        return f"invalid cluster id {echo(identify.cluster_id)}: longer than {MAX_NAME_BYTES} characters"
    if (problem := cluster_id_problem(identify.cluster_id)) is not None:
        return problem
    if not identify.edge_id.strip():
        return "edge_id is empty"
    if len(identify.edge_id.encode()) > MAX_EDGE_ID_BYTES:
        return f"edge_id {echo(identify.edge_id)} is longer than {MAX_EDGE_ID_BYTES} bytes"
    if len(identify.serializers) > MAX_SERIALIZERS:
        return f"serializers lists {len(identify.serializers)} names, more than {MAX_SERIALIZERS}"
    for name in identify.serializers:
        if len(name.encode()) > MAX_NAME_BYTES:
            return f"serializer name {echo(name)} is longer than {MAX_NAME_BYTES} bytes"
    interval = identify.sync_interval_seconds
    if not math.isfinite(interval) or not 0 <= interval <= MAX_SYNC_INTERVAL:
        return (
            f"sync_interval_seconds must be a number from 0 (the default) to {MAX_SYNC_INTERVAL:g} "
            f"(one day), got {interval}"
        )
    for kind in identify.kinds:
        if not kind or len(kind.encode()) > MAX_KIND_BYTES:
            return f"kind {echo(kind)} in kinds must be 1-{MAX_KIND_BYTES} bytes"
    return None


def check_header(state: sync_pb2.ClusterState, cluster_id: str, edge_id: str) -> None:
    """Identity and ordering: the state belongs to this stream and comes after the previous one."""
    if state.cluster_id != cluster_id:
        raise InvalidState(
            f"cluster_id {echo(state.cluster_id)} does not match the stream's cluster {echo(cluster_id)}"
        )
    if state.edge_id != edge_id:
        raise InvalidState(f"edge_id {echo(state.edge_id)} does not match the stream's edge {echo(edge_id)}")
    if state.type not in (sync_pb2.STATE_TYPE_FULL, sync_pb2.STATE_TYPE_DELTA):
        raise InvalidState("type must be STATE_TYPE_FULL or STATE_TYPE_DELTA")
    if not state.HasField("timestamp"):
        raise InvalidState("timestamp is missing")


def check_sequence(sequence: int, last_sequence: int) -> None:
    """Raised before the stream takes ``sequence`` as its last: a refused one never blocks later states."""
    if sequence > MAX_SEQUENCE:
        raise InvalidState(f"sequence {sequence} is above 2^63-1, the largest sequence the manager keeps")
    if sequence <= last_sequence:
        raise InvalidState(
            f"sequence {sequence} is not greater than the previous state's sequence {last_sequence} on this stream"
        )


@dataclass(slots=True)
class StateSet:
    """One state to apply: a single ClusterState, or a whole chunk set joined together."""

    sequence: int
    type: int
    kinds: list[str]
    cached_kinds: list[str]
    errors: list[sync_pb2.KindError]
    counts: dict[str, int]
    resources: list[sync_pb2.Resource] = field(default_factory=list)
    deletions: list[sync_pb2.ResourceKey] = field(default_factory=list)
    chunks: int = 1
    #: A FULL sent against the manager's versions: unlisted objects are unchanged, deletions explicit.
    against_versions: bool = False
    #: When the edge took the state (its ``timestamp``); ``None`` if it sent none. The observation
    #: time of every object that carries none of its own (all of a FULL's, all of a protocol 1 edge's).
    observed_at: datetime | None = None
    #: A chunk set whose chunks were checked (``check_resources``) and staged by the reconciler as
    #: they arrived: the objects per kind, and what the reconciler planned (``resources`` is empty).
    checked: Counter[str] | None = None
    staged: Staged | None = None
    #: The first object such a set held twice (``kind/namespace/name``): invalid in a FULL.
    repeated: str | None = None

    @property
    def object_count(self) -> int:
        """Objects the state carries: its resources (staged or not) and deletions."""
        staged = sum(self.checked.values()) if self.checked is not None else len(self.resources)
        return staged + len(self.deletions)

    @classmethod
    def single(cls, state: sync_pb2.ClusterState) -> StateSet:
        return cls(
            sequence=state.sequence,
            type=state.type,
            kinds=list(state.kinds),
            cached_kinds=list(state.cached_kinds),
            errors=list(state.errors),
            counts=dict(state.counts),
            resources=list(state.resources),
            deletions=list(state.deletions),
            against_versions=state.against_versions and state.type == sync_pb2.STATE_TYPE_FULL,
            observed_at=_time(state.timestamp) if state.HasField("timestamp") else None,
        )

    @property
    def full(self) -> bool:
        return self.type == sync_pb2.STATE_TYPE_FULL


def _time(stamp: Timestamp) -> datetime:
    try:
        return stamp.ToDatetime(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidState(f"timestamp is not a valid time: {exc}") from None


def _describe(r: sync_pb2.Resource | sync_pb2.ResourceKey) -> str:
    """``kind/namespace/name`` for a message, each part cut like any echoed value."""
    return f"{clip(r.kind or '?')}/{clip(r.namespace) + '/' if r.namespace else ''}{clip(r.name or '?')}"


def _check_errors(state: StateSet, limits: LimitsSection, declared: Collection[str] | None) -> None:
    """At most ``limits.max_kind_errors`` errors, each of a declared kind; long messages are cut.

    The cluster record keeps them and every ``query clusters`` answer carries them: without
    bounds one edge could make that answer too large for any reader.
    """
    if len(state.errors) > limits.max_kind_errors:
        raise InvalidState(
            f"the state lists {len(state.errors)} kind errors, more than limits.max_kind_errors "
            f"({limits.max_kind_errors})"
        )
    for error in state.errors:
        if not error.kind:
            raise InvalidState("an entry in errors has no kind")
        if declared is not None and error.kind not in declared:
            raise InvalidState(f"an error names kind {echo(error.kind)}, which the edge did not declare in Identify.kinds")
        error.message = cut_utf8(error.message, limits.max_error_message_bytes)


def _check_declared(state: StateSet, declared: Collection[str]) -> None:
    """Only kinds the edge declared: anything else could never be replaced by a FULL."""
    for name in ("kinds", "cached_kinds"):
        for kind in getattr(state, name):
            if kind not in declared:
                raise InvalidState(f"{name} lists {echo(kind)}, which the edge did not declare in Identify.kinds")
    items: list[tuple[str, sync_pb2.Resource | sync_pb2.ResourceKey]] = [
        *(("resource", r) for r in state.resources),
        *(("deletion", d) for d in state.deletions),
    ]
    for what, item in items:
        if item.kind not in declared:
            raise InvalidState(
                f"{what} {_describe(item)} is of kind {echo(item.kind)}, which the edge did not declare "
                "in Identify.kinds"
            )


def _check_key(item: sync_pb2.Resource | sync_pb2.ResourceKey, what: str) -> None:
    """Names short enough to store, index and quote."""
    if len(item.kind) > MAX_KIND_BYTES or len(item.namespace) > MAX_KIND_BYTES or len(item.name) > MAX_OBJECT_NAME:
        raise InvalidState(
            f"{what} {_describe(item)}: kind and namespace may have at most {MAX_KIND_BYTES} characters, "
            f"name at most {MAX_OBJECT_NAME}"
        )


#: A wire object as its digest hashes it (``reconciler.digest``): deterministic, labels sorted.
serialize = operator.methodcaller("SerializeToString", deterministic=True)


@dataclass(slots=True)
class WireColumns:
    """A chunk's objects field by field, read once for the checks and for the reconciler's plan
    (every read of a wire object's field builds a new string)."""

    kinds: list[str]
    namespaces: list[str]
    names: list[str]
    uids: list[str]
    #: Each object serialized (``serialize``): its size, and what its digest hashes.
    encoded: list[bytes]

    @classmethod
    def of(cls, resources: Sequence[sync_pb2.Resource]) -> WireColumns:
        return cls(
            [r.kind for r in resources], [r.namespace for r in resources], [r.name for r in resources],
            [r.uid for r in resources], list(map(serialize, resources)),
        )  # fmt: skip


def check_resources(
    resources: Sequence[sync_pb2.Resource],
    max_payload: int,
    declared: Collection[str] | None = None,
    columns: WireColumns | None = None,
) -> Counter[str]:
    """Each resource's fields, sizes and kind (one the edge declared, when ``declared`` is given);
    returns the count per kind. A whole state's, or one chunk's as it arrives (``columns``: its
    fields, read already).

    Column by column, in the interpreter's C loops (``all``, ``max``, ``set``, ``Counter``),
    and one object at a time only to name the first that fails: a resync checks
    150,000 objects, and one Python loop over them took most of a second. The first
    failing object of the first failing check is named.
    """
    if not resources:
        return Counter()
    if columns is None:
        columns = WireColumns.of(resources)
    kinds, namespaces, names, uids = columns.kinds, columns.namespaces, columns.names, columns.uids
    totals = list(map(len, columns.encoded))

    def first(bad: Callable[[sync_pb2.Resource], bool]) -> sync_pb2.Resource:
        return next(r for r in resources if bad(r))

    if not (all(kinds) and all(names) and all(uids)):
        r = first(lambda r: not r.kind or not r.name or not r.uid)
        raise InvalidState(f"resource {_describe(r)} needs kind, name and uid")
    if (
        max(map(len, kinds)) > MAX_KIND_BYTES
        or max(map(len, namespaces)) > MAX_KIND_BYTES
        or max(map(len, names)) > MAX_OBJECT_NAME
    ):
        for r in resources:
            _check_key(r, "resource")
    sizes = [len(r.payload) for r in resources]
    if max(map(operator.sub, totals, sizes)) > MAX_OBJECT_OVERHEAD:
        r = first(lambda r: r.ByteSize() - len(r.payload) > MAX_OBJECT_OVERHEAD)
        raise InvalidState(
            f"resource {_describe(r)} takes {r.ByteSize() - len(r.payload)} bytes besides its payload (labels, uid, "
            f"resourceVersion), more than {MAX_OBJECT_OVERHEAD}"
        )
    if max(sizes) > max_payload:
        r = first(lambda r: len(r.payload) > max_payload)
        raise InvalidState(
            f"resource {_describe(r)} has a {len(r.payload)}-byte payload, more than "
            f"limits.max_payload_bytes ({max_payload})"
        )
    actual = Counter(kinds)
    if declared is not None and not set(declared).issuperset(actual):
        r = first(lambda r: r.kind not in declared)
        raise InvalidState(
            f"resource {_describe(r)} is of kind {echo(r.kind)}, which the edge did not declare in Identify.kinds"
        )
    return actual


def _check_resources(state: StateSet, covered: set[str], max_payload: int) -> Counter[str]:
    """``check_resources`` of the whole state (unless its chunks were checked as they came, see
    ``StateSet.checked``), its kinds covered, and no key twice in a FULL."""
    checked = state.checked
    actual = checked if checked is not None else check_resources(state.resources, max_payload)
    if state.full:
        if not covered.issuperset(actual):
            r = next((r for r in state.resources if r.kind not in covered), None)
            kind = r.kind if r is not None else min(set(actual) - covered)
            where = _describe(r) if r is not None else f"of kind {clip(kind)} (in an earlier chunk)"
            raise InvalidState(
                f"resource {where} is of kind {echo(kind)}, which is in neither kinds nor cached_kinds"
            )
        if checked is not None:  # the chunks' keys were looked at as they were staged
            if state.repeated is not None:
                raise InvalidState(f"resource {state.repeated} appears more than once")
            return actual
        resources = state.resources
        keys = [(r.kind, r.namespace, r.name) for r in resources]
        if len(set(keys)) != len(keys):
            seen: set[tuple[str, str, str]] = set()
            for r, key in zip(resources, keys, strict=True):
                if key in seen:
                    raise InvalidState(f"resource {_describe(r)} appears more than once")
                seen.add(key)
    return actual


def check_state_set(state: StateSet, limits: LimitsSection, declared: Collection[str] | None = None) -> None:
    """Required fields, kinds, sizes, counts and duplicates of a complete state.

    ``declared`` are the kinds of the stream's ``Identify``; when given, every kind the
    state names must be one of them. Kind error messages longer than
    ``limits.max_error_message_bytes`` are cut in place.
    """
    total = state.object_count
    if total > limits.max_resources_per_state:
        raise InvalidState(
            f"the state holds {total} objects, more than limits.max_resources_per_state "
            f"({limits.max_resources_per_state})"
        )
    _check_errors(state, limits, declared)
    if not state.full:
        if state.kinds or state.cached_kinds:
            raise InvalidState("a DELTA state must not list kinds or cached_kinds")
    elif state.deletions and not state.against_versions:
        raise InvalidState("a FULL state must not carry deletions: what it leaves out is deleted")
    for deletion in state.deletions:
        if not deletion.kind or not deletion.name:
            raise InvalidState(f"deletion {_describe(deletion)} needs kind and name")
        _check_key(deletion, "deletion")
        if state.full and deletion.kind not in state.kinds:
            raise InvalidState(f"deletion {_describe(deletion)} is of kind {echo(deletion.kind)}, which is not in kinds")
    if declared is not None:
        _check_declared(state, declared)
    covered = partial.covered_kinds(state)
    if state.full:
        # Each kind counted becomes a label of the manager's metrics: only kinds the state covers.
        for kind in state.counts:
            if kind not in covered:
                raise InvalidState(f"counts name {echo(kind)}, which is in neither kinds nor cached_kinds")
    actual = _check_resources(state, covered, limits.max_payload_bytes)
    if state.full and state.counts and state.against_versions:
        # Only what differs travels: the whole state's counts bound what arrived.
        for kind, present in actual.items():
            if present > state.counts.get(kind, 0):
                raise InvalidState(
                    f"counts say {state.counts.get(kind, 0)} {clip(kind)} but the state holds {present}"
                )
    elif state.full and state.counts:
        for kind in sorted(set(state.counts) | set(actual)):
            if state.counts.get(kind, 0) != actual.get(kind, 0):
                raise InvalidState(
                    f"counts say {state.counts.get(kind, 0)} {clip(kind)} but the state holds {actual.get(kind, 0)}"
                )
