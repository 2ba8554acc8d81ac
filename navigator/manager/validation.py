"""Checks on what an edge sends, each failure a message that names the problem.

Everything here is pure: no storage, no I/O. A failed check becomes an
``INVALID`` ack (or a ``MALFORMED`` rejection for ``Identify``); nothing stored
changes and the stream stays open.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from navigator.config.manager import LimitsSection
from navigator.manager import partial
from navigator.protocol import SUPPORTED_PROTOCOL_VERSIONS, cluster_id_problem
from navigator.v1 import sync_pb2


class InvalidState(ValueError):
    """A ClusterState (or chunk set) that must not be applied; the message says why."""


def check_identify(identify: sync_pb2.Identify) -> str | None:
    """The problem with an ``Identify``, or ``None`` when it is well formed."""
    if identify.protocol_version not in SUPPORTED_PROTOCOL_VERSIONS:
        speaks = ", ".join(map(str, SUPPORTED_PROTOCOL_VERSIONS))
        return f"unsupported protocol_version {identify.protocol_version} (this manager speaks {speaks})"
    if (problem := cluster_id_problem(identify.cluster_id)) is not None:
        return problem
    if not identify.edge_id.strip():
        return "edge_id is empty"
    if identify.sync_interval_seconds < 0:
        return f"sync_interval_seconds is negative ({identify.sync_interval_seconds})"
    return None


def check_header(state: sync_pb2.ClusterState, cluster_id: str, edge_id: str) -> None:
    """Identity and ordering: the state belongs to this stream and comes after the previous one."""
    if state.cluster_id != cluster_id:
        raise InvalidState(f"cluster_id {state.cluster_id!r} does not match the stream's cluster {cluster_id!r}")
    if state.edge_id != edge_id:
        raise InvalidState(f"edge_id {state.edge_id!r} does not match the stream's edge {edge_id!r}")
    if state.type not in (sync_pb2.STATE_TYPE_FULL, sync_pb2.STATE_TYPE_DELTA):
        raise InvalidState("type must be STATE_TYPE_FULL or STATE_TYPE_DELTA")
    if not state.HasField("timestamp"):
        raise InvalidState("timestamp is missing")


def check_sequence(sequence: int, last_sequence: int) -> None:
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
    return f"{r.kind or '?'}/{r.namespace + '/' if r.namespace else ''}{r.name or '?'}"


def check_state_set(state: StateSet, limits: LimitsSection) -> None:
    """Required fields, kinds, sizes, counts and duplicates of a complete state."""
    total = len(state.resources) + len(state.deletions)
    if total > limits.max_resources_per_state:
        raise InvalidState(
            f"the state holds {total} objects, more than limits.max_resources_per_state "
            f"({limits.max_resources_per_state})"
        )
    for error in state.errors:
        if not error.kind:
            raise InvalidState("an entry in errors has no kind")
    if not state.full:
        if state.kinds or state.cached_kinds:
            raise InvalidState("a DELTA state must not list kinds or cached_kinds")
    elif state.deletions and not state.against_versions:
        raise InvalidState("a FULL state must not carry deletions: what it leaves out is deleted")
    for deletion in state.deletions:
        if not deletion.kind or not deletion.name:
            raise InvalidState(f"deletion {_describe(deletion)} needs kind and name")
        if state.full and deletion.kind not in state.kinds:
            raise InvalidState(f"deletion {_describe(deletion)} is of kind {deletion.kind!r}, which is not in kinds")
    covered = partial.covered_kinds(state)
    max_payload = limits.max_payload_bytes
    seen: set[tuple[str, str, str]] = set()
    actual: Counter[str] = Counter()
    for r in state.resources:
        if not r.kind or not r.name or not r.uid:
            raise InvalidState(f"resource {_describe(r)} needs kind, name and uid")
        if len(r.payload) > max_payload:
            raise InvalidState(
                f"resource {_describe(r)} has a {len(r.payload)}-byte payload, more than "
                f"limits.max_payload_bytes ({max_payload})"
            )
        if state.full:
            if r.kind not in covered:
                raise InvalidState(
                    f"resource {_describe(r)} is of kind {r.kind!r}, which is in neither kinds nor cached_kinds"
                )
            key = (r.kind, r.namespace, r.name)
            if key in seen:
                raise InvalidState(f"resource {_describe(r)} appears more than once")
            seen.add(key)
        actual[r.kind] += 1
    if state.full and state.counts and state.against_versions:
        # Only what differs travels: the whole state's counts bound what arrived.
        for kind, present in actual.items():
            if present > state.counts.get(kind, 0):
                raise InvalidState(f"counts say {state.counts.get(kind, 0)} {kind} but the state holds {present}")
    elif state.full and state.counts:
        for kind in sorted(set(state.counts) | set(actual)):
            if state.counts.get(kind, 0) != actual.get(kind, 0):
                raise InvalidState(
                    f"counts say {state.counts.get(kind, 0)} {kind} but the state holds {actual.get(kind, 0)}"
                )
