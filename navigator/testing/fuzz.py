"""Property-based fuzzing of everything the manager accepts, against a real manager over real gRPC.

Hypothesis builds messages that are well formed but hostile (odd names, labels,
payloads, sequences, timestamps, observation times, chunk fields) and messages
mutated field by field from valid ones, plus raw bytes on the wire. A
``FuzzRunner`` sends them to one real manager (gRPC on 127.0.0.1, real storage)
over a few reused streams, reconnecting when the manager ends one, and checks
after every case:

- every answer is well formed: an ``Ack`` for the state's sequence (``APPLIED``,
  ``BUFFERED`` for a chunk, ``INVALID`` with a reason; never ``RETRY``: storage
  is healthy), an ``Accept`` or a ``Reject`` whose status matches, query pages
  that honour the filters, or a gRPC status with a message, never ``UNKNOWN``
  or ``INTERNAL`` (an unhandled exception);
- the manager still answers (health, every query) and logged no error and no traceback;
- a *victim* cluster, synced by a well-behaved edge before the run, holds
  exactly what it held (objects, history, its connected edge);
- the fuzzer's own cluster holds what the states the manager acknowledged
  ``APPLIED`` make of it, and nothing changed for those it refused.

A plugin author runs the same cases against a storage backend of their own::

    with FuzzRunner(tmp, storage="postgres", storage_options={"dsn": dsn}) as runner:
        result = run_message_type(runner, "full", cases=200, seed=1)
        assert not result.failures, result.failures
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
import math
import string
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import hypothesis
import orjson
from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import strategies as st
from hypothesis.reporting import with_reporter
from hypothesis.vendor import pretty
from loguru import logger

from navigator.testing.manager import TestManager, run_test_manager
from navigator.v1 import query_pb2, query_pb2_grpc, sync_pb2, sync_pb2_grpc

__all__ = [
    "KNOWN_DEFECTS",
    "MESSAGE_TYPES",
    "FuzzRunner",
    "HandshakeCase",
    "PropertyFailed",
    "QueryCase",
    "RawCase",
    "Step",
    "StreamCase",
    "TypeResult",
    "base_state",
    "known_defect",
    "run_message_type",
]

#: The cluster a well-behaved edge syncs before the run: nothing the fuzzer sends may touch it.
VICTIM = "victim"
#: The fuzzer's own cluster (states) and the one its handshakes may claim.
FUZZ = "fuzz"
HANDSHAKE = "fuzz-handshake"
TOKENS = {VICTIM: "victim-secret-token", FUZZ: "fuzz-token", HANDSHAKE: "handshake-token"}
KINDS = ("pods", "services", "endpointslices")
FUZZ_EDGE = "fuzz-edge"
MAX_SEQUENCE = 2**63 - 1
#: No answer of the manager (ack error, reject, status details) should be longer: it quotes at most
#: 64 characters of any value it was sent.
MAX_REPLY_TEXT = 4096
#: gRPC codes a refused sync stream or query may end with (each with a message).
REFUSAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
REJECT_STATUS = {
    sync_pb2.REJECT_REASON_MALFORMED: grpc.StatusCode.INVALID_ARGUMENT,
    sync_pb2.REJECT_REASON_UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    sync_pb2.REJECT_REASON_UNSUPPORTED: grpc.StatusCode.FAILED_PRECONDITION,
    sync_pb2.REJECT_REASON_ALREADY_HELD: grpc.StatusCode.ALREADY_EXISTS,
    sync_pb2.REJECT_REASON_GRACE_PERIOD: grpc.StatusCode.UNAVAILABLE,
    sync_pb2.REJECT_REASON_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}
ANSWER_TIMEOUT = 30.0


class PropertyFailed(AssertionError):
    """A property of the manager did not hold for one case; the message says which and how."""


class _Oversized(Exception):
    """A state beyond the manager's message limit was refused by gRPC, as it should be: the case ends."""


# -- strategies: values -------------------------------------------------------------------

ODD_TEXT = (
    "", " ", "\x00", "a\x00b", "é", "日本語", "\u202e", "\ufeff", "🙂", "%s%n", "{}", "'\"", "\\", "../..", "a\nb",
    "null", "*", "-", ".", "a" * 63, "a" * 64, "a" * 65, "a" * 253, "a" * 254, "a" * 1024, "a" * 1025,
    "x" * 5000, "\u0085", "\U0010ffff", "a=b", "a,b", "!a", "in (", "0", "-1", "9" * 40,
)  # fmt: skip

ODD_UINT64 = (0, 1, 2, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1)
ODD_INT64 = (0, -1, 1, -(2**31), 2**31 - 1, -(2**63), 2**63 - 1, -62135596800, -62135596801, 253402300799, 253402300800)
ODD_DOUBLE = (0.0, -0.0, -1.0, 1e-320, 5e-324, 1e308, -1e308, math.inf, -math.inf, math.nan, 30.0, 86400.0, 86400.5)


def _deep(levels: int) -> bytes:
    return b'{"a":' * levels + b"1" + b"}" * levels


ODD_PAYLOADS = (
    b"", b"{}", b"[]", b"null", b"1", b'"x"', b"{", b"}", b'{"a":1e999}', b'{"a":-1e999}', b'{"a":1,"a":2}',
    b'{"a":"\\ud800"}', b'{"a":"\\udc00x"}', b' {"a":1} ', b'{"a":NaN}', b"\xef\xbb\xbf{}", b'{"\\u0000":"\\u0000"}',
    b'{"a":123456789012345678901234567890}', b'{"a":"\xff"}', b"\xff\xfe", b'{"a":[' + b"[" * 40 + b"]" * 40 + b"]}",
    b'{"a":1}garbage', b'{"a":1}{"b":2}', b'{"a":"' + b"x" * 70000 + b'"}', _deep(31), _deep(32), _deep(33),
    _deep(2000), b'{"":""}', b'{"a":-0}', b'{"a":1.0e-400}', b'{"a":true,"b":false,"c":null}',
)  # fmt: skip


@functools.cache
def texts(max_size: int = 30) -> st.SearchStrategy[str]:
    """Any text protobuf can carry (no lone surrogates), short mostly, sometimes one of the odd ones."""
    return st.one_of(
        st.sampled_from(ODD_TEXT),
        st.text(st.characters(exclude_categories=["Cs"]), max_size=max_size),
        st.text(string.ascii_lowercase + string.digits + "-.", min_size=1, max_size=12),
    )


@functools.cache
def k8s_names() -> st.SearchStrategy[str]:
    """Names that overlap from case to case, so that states replace, modify and delete each other's objects,
    and odd ones a manager must take (any text of 1-253 characters)."""
    return st.one_of(st.sampled_from(("web-1", "web-2", "db-0", "a", "x.y", "n-9")), _present(20))


@functools.cache
def _present(max_size: int) -> st.SearchStrategy[str]:
    """Odd text that is still a valid key or uid: not empty, at most 253 characters."""
    return texts(max_size).filter(lambda text: 0 < len(text) <= 253)


#: "Now" for the strategies: fixed for the process, so that hypothesis draws the same values again.
_NOW = int(time.time())


@functools.cache
def timestamps() -> st.SearchStrategy[tuple[int, int]]:
    """(seconds, nanos) of a protobuf Timestamp: recent ones, and the edges of and beyond its range."""
    return st.one_of(
        st.tuples(st.integers(_NOW - 86400, _NOW + 60), st.integers(0, 999_999_999)),
        st.tuples(st.sampled_from(ODD_INT64), st.sampled_from((0, 999_999_999, 1_000_000_000, -1, 2**31 - 1, -(2**31)))),
    )


def _set_time(stamp: Timestamp, value: tuple[int, int]) -> None:
    stamp.seconds, stamp.nanos = value


@functools.cache
def json_payloads() -> st.SearchStrategy[bytes]:
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False, allow_infinity=False),
        texts(12),
    )  # fmt: skip
    values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts(8), inner, max_size=3),
                          max_leaves=8)  # fmt: skip
    return st.dictionaries(texts(8), values, max_size=4).map(orjson.dumps)


@functools.cache
def struct_payloads() -> st.SearchStrategy[bytes]:
    """Payloads for the ``protobuf`` serializer: Structs (numbers are doubles, NaN included)."""
    leaves = st.one_of(st.none(), st.booleans(), st.floats(), texts(12))
    values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts(8), inner, max_size=3),
                          max_leaves=8)  # fmt: skip

    def encode(data: dict[str, Any]) -> bytes:
        message = struct_pb2.Struct()
        message.update(data)
        return message.SerializeToString()

    return st.dictionaries(texts(8), values, max_size=4).map(encode)


@functools.cache
def payloads(serializer: str) -> st.SearchStrategy[bytes]:
    wellformed = json_payloads() if serializer == "json" else struct_payloads()
    return st.one_of(*[wellformed] * 6, st.sampled_from(ODD_PAYLOADS), st.binary(max_size=40))


@functools.cache
def labels() -> st.SearchStrategy[dict[str, str]]:
    plain = st.text(string.ascii_lowercase + "-./", min_size=1, max_size=10)
    return st.one_of(
        st.dictionaries(st.sampled_from(("app", "tier", "env")), st.sampled_from(("web", "db", "x", ""))),
        st.dictionaries(st.sampled_from(("app", "tier", "env")), st.sampled_from(("web", "db", "x", ""))),
        st.dictionaries(st.one_of(plain, texts(20)), texts(20), max_size=4),
        st.dictionaries(st.one_of(plain, texts(20)), texts(20), max_size=4),
        st.just({"big": "v" * 70000}),  # more than an object may carry besides its payload
    )


@functools.cache
def _namespaces() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(("default", "kube-system", "")), _present(12))


@functools.cache
def _uids() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(("uid-1", "uid-2", "uid-3")), _present(40))


@functools.cache
def _versions() -> st.SearchStrategy[str]:
    return st.one_of(st.integers(1, 10**6).map(str), texts(10))


@st.composite
def resources(draw: st.DrawFn, kinds: Sequence[str], serializer: str = "json", observed: bool = False) -> sync_pb2.Resource:
    """One object: well formed most of the time, every field sometimes odd."""
    r = sync_pb2.Resource(
        kind=draw(st.sampled_from(kinds)),
        namespace=draw(_namespaces()),
        name=draw(k8s_names()),
        uid=draw(_uids()),
        resource_version=draw(_versions()),
        labels=draw(labels()),
        payload=draw(payloads(serializer)),
    )
    if observed and draw(st.booleans()):
        _set_time(r.observed_at, draw(timestamps()))
    return r


# -- strategies: messages mutated field by field --------------------------------------------


@functools.cache
def _scalar(fd: Any) -> st.SearchStrategy[Any]:
    """A hostile value of a scalar field's type (always one protobuf accepts for it)."""
    t = fd.type
    if t == FieldDescriptor.TYPE_STRING:
        return texts(40)
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.binary(max_size=40), st.sampled_from(ODD_PAYLOADS))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.one_of(st.sampled_from(ODD_DOUBLE), st.floats(width=64 if t == FieldDescriptor.TYPE_DOUBLE else 32))
    if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return st.one_of(st.sampled_from(ODD_UINT64), st.integers(0, 2**64 - 1))
    if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return st.one_of(st.sampled_from((0, 1, 2, 3, 2**31, 2**32 - 1)), st.integers(0, 2**32 - 1))
    if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
        return st.one_of(st.sampled_from(ODD_INT64), st.integers(-(2**63), 2**63 - 1))
    if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        return st.one_of(st.sampled_from((0, -1, 1, 999_999_999, 1_000_000_000, 2**31 - 1, -(2**31))),
                         st.integers(-(2**31), 2**31 - 1))  # fmt: skip
    if t == FieldDescriptor.TYPE_ENUM:
        return st.integers(-3, 8)  # proto3 enums are open: unknown numbers travel
    raise TypeError(f"no strategy for field type {t} ({fd.full_name})")


#: How big a repeated field's copies may grow ("many"): cases stay fast, messages within the limit.
_MANY_BYTES = 4 * 1024 * 1024


def _is_map(fd: Any) -> bool:
    return fd.message_type is not None and fd.message_type.GetOptions().map_entry


def _mutate_once(draw: st.DrawFn, message: Message, skip: frozenset[str], depth: int = 0) -> None:
    fields: list[Any] = [f for f in message.DESCRIPTOR.fields if f.name not in skip]
    fd = draw(st.sampled_from(fields))
    value = getattr(message, fd.name)
    if _is_map(fd):
        key_fd, value_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
        op = draw(st.sampled_from(("clear", "add", "add", "drop")))
        if op == "clear":
            message.ClearField(fd.name)
        elif op == "drop" and len(value):
            del value[draw(st.sampled_from(sorted(value)))]
        else:
            value[draw(_scalar(key_fd))] = draw(_scalar(value_fd))
    elif fd.is_repeated:
        op = draw(st.sampled_from(("clear", "add", "duplicate", "drop", "reverse", "mutate", "many")))
        items = list(value)
        if op == "clear" or (not items and op in ("duplicate", "drop", "reverse", "mutate")):
            message.ClearField(fd.name)
        elif op == "add":
            if fd.message_type is not None:
                added = value.add()
                if depth < 3:
                    _mutate_once(draw, added, frozenset(), depth + 1)
            else:
                value.append(draw(_scalar(fd)))
        elif op == "duplicate":
            value.append(items[draw(st.integers(0, len(items) - 1))])
        elif op == "drop":
            del value[draw(st.integers(0, len(items) - 1))]
        elif op == "reverse":
            message.ClearField(fd.name)
            getattr(message, fd.name).extend(reversed(items))
        elif op == "many":
            size = sum(i.ByteSize() if isinstance(i, Message) else len(str(i)) for i in items)
            times = draw(st.integers(2, 40))
            if size * times <= _MANY_BYTES:  # the manager's message limit is tried by the big labels
                getattr(message, fd.name).extend(items * times)
        elif fd.message_type is not None and depth < 3:
            _mutate_once(draw, value[draw(st.integers(0, len(items) - 1))], frozenset(), depth + 1)
        else:
            value[draw(st.integers(0, len(items) - 1))] = draw(_scalar(fd))
    elif fd.message_type is not None:
        if draw(st.booleans()) or depth >= 3:
            message.ClearField(fd.name)
        else:
            _mutate_once(draw, value, frozenset(), depth + 1)
    elif draw(st.integers(0, 4)) == 0:
        message.ClearField(fd.name)
    else:
        setattr(message, fd.name, draw(_scalar(fd)))


@st.composite
def mutated(draw: st.DrawFn, message: Message, skip: frozenset[str] = frozenset(), most: int = 3) -> Message:
    """A copy of ``message`` with one to ``most`` fields (anywhere in it) cleared, set to odd values, or
    their repeated entries added, duplicated, dropped or reordered."""
    copy = type(message)()
    copy.CopyFrom(message)
    for _ in range(draw(st.integers(1, most))):
        _mutate_once(draw, copy, skip)
    return copy


# -- cases ----------------------------------------------------------------------------------


class _Compact:
    """A case hypothesis shows as its ``repr`` (big messages cut), not field by field: a state
    mutated to thousands of objects would print as megabytes (registered below, ``_print_compact``)."""


def _print_compact(case: object, printer: Any, _cycle: bool) -> None:
    printer.text(repr(case))


@dataclass
class Step(_Compact):
    """One state of a stream case; ``offset`` places its sequence after the stream's last one (``None``:
    ``state.sequence`` is sent as it is), ``snapshot_offset`` does the same for ``chunk.snapshot_sequence``."""

    state: sync_pb2.ClusterState
    offset: int | None = 0
    snapshot_offset: int | None = None
    #: Whether the state was mutated (fields, or its sequence) after it was built.
    mutated: bool = False

    def __repr__(self) -> str:
        return f"Step(offset={self.offset}, snapshot_offset={self.snapshot_offset}, mutated={self.mutated}, state={_short(self.state)})"


@dataclass
class StreamCase(_Compact):
    """States (and other edge messages) sent on the fuzzer's stream of its own cluster."""

    serializer: str
    steps: list[Step | sync_pb2.EdgeMessage]
    #: Reconnect first with ``want_versions`` and check the Versions pages against the model.
    versions: bool = False
    #: Drop the stream and connect again first, as an edge whose connection broke does.
    reconnect: bool = False

    def __repr__(self) -> str:
        parts = [f"StreamCase(serializer={self.serializer!r}, versions={self.versions}, reconnect={self.reconnect})"]
        for step in self.steps:
            if isinstance(step, Step):
                parts.append(f"  {step!r}")
            else:
                parts.append("  message: " + _short(step))
        return "\n".join(parts)


@dataclass
class HandshakeCase(_Compact):
    """The first message of a new stream, with the call's bearer token (``None``: none)."""

    token: str | None
    first: sync_pb2.EdgeMessage
    then: list[sync_pb2.EdgeMessage] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"HandshakeCase(token={self.token!r}, first={_short(self.first)}, then={[_short(m) for m in self.then]})"


@dataclass
class RawCase(_Compact):
    """Bytes on the wire of one method: ``prefix`` messages encoded normally first (sync only)."""

    method: str
    data: bytes
    prefix: list[sync_pb2.EdgeMessage] = field(default_factory=list)

    def __repr__(self) -> str:
        return f"RawCase(method={self.method!r}, data={self.data[:200]!r}, prefix={[_short(m) for m in self.prefix]})"


@dataclass
class QueryCase(_Compact):
    """A query request; ``times`` set Timestamp fields relative to the manager's clock when sent."""

    method: str
    request: Message
    times: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"QueryCase(method={self.method!r}, times={self.times}, request={_short(self.request)})"


for _case in (Step, StreamCase, HandshakeCase, RawCase, QueryCase):
    pretty.for_type_by_name(__name__, _case.__name__, _print_compact)


def _short(message: Message, limit: int = 1500) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def base_state(state_type: int) -> sync_pb2.ClusterState:
    """An empty state of the fuzzer's cluster (the runner places its sequence), stamped with the
    strategies' fixed "now": a case drawn again must serialize to the same bytes."""
    state = sync_pb2.ClusterState(edge_id=FUZZ_EDGE, cluster_id=FUZZ, type=state_type)  # type: ignore[arg-type]
    state.timestamp.FromSeconds(_NOW)
    return state


@st.composite
def full_states(draw: st.DrawFn, serializer: str, against: bool = False) -> sync_pb2.ClusterState:
    """A FULL that follows the protocol, with hostile objects in it."""
    state = base_state(sync_pb2.STATE_TYPE_FULL)
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=1, max_size=3, unique=True))
    cached = draw(st.lists(st.sampled_from([k for k in KINDS if k not in kinds] or ["pods"]), max_size=1, unique=True))
    cached = [k for k in cached if k not in kinds]
    state.kinds.extend(kinds)
    state.cached_kinds.extend(cached)
    items = draw(st.lists(resources(kinds + cached, serializer), max_size=6, unique_by=lambda r: (r.kind, r.namespace, r.name)))
    state.resources.extend(items)
    for kind in (*kinds, *cached):
        state.counts[kind] = sum(1 for r in items if r.kind == kind)
    for kind in draw(st.lists(st.sampled_from(KINDS), max_size=2, unique=True)):
        state.errors.add(kind=kind, message=draw(texts(50)), http_status=draw(st.sampled_from((0, 403, 500, -1))),
                         cached=kind in cached)  # fmt: skip
    if against:
        state.against_versions = True
        for _ in range(draw(st.integers(0, 3))):
            state.deletions.add(kind=draw(st.sampled_from(kinds)), namespace="default", name=draw(k8s_names()),
                                uid=draw(st.sampled_from(("", "uid-1", "uid-2"))))  # fmt: skip
        for kind in kinds:
            state.counts[kind] += draw(st.integers(0, 5))  # counts count the whole state, not what differs
    return state


@st.composite
def delta_states(draw: st.DrawFn, serializer: str) -> sync_pb2.ClusterState:
    state = base_state(sync_pb2.STATE_TYPE_DELTA)
    state.resources.extend(draw(st.lists(resources(KINDS, serializer, observed=True), max_size=5)))
    for _ in range(draw(st.integers(0, 3))):
        gone = state.deletions.add(kind=draw(st.sampled_from(KINDS)), namespace=draw(st.sampled_from(("default", ""))),
                                   name=draw(k8s_names()), uid=draw(st.sampled_from(("", "uid-1", "uid-2"))))  # fmt: skip
        if draw(st.booleans()):
            _set_time(gone.observed_at, draw(timestamps()))
    return state


#: Fields the runner fills in from the stream (sequence) or that are varied on their own terms.
_STATE_SKIP = frozenset({"sequence"})


@st.composite
def _maybe_mutated_step(draw: st.DrawFn, state: sync_pb2.ClusterState) -> Step:
    """The state as built (hostile but valid), or mutated field by field; and, on its own, sometimes an
    odd sequence: the previous one again, one before, a jump, or one of the edges of uint64."""
    step = Step(state)
    if draw(st.integers(0, 2)) == 0:
        step.state = draw(mutated(state, _STATE_SKIP))  # type: ignore[assignment]
        step.mutated = True
    if draw(st.integers(0, 3)) == 0:
        step.mutated = True
        if draw(st.booleans()):
            step.offset = draw(st.sampled_from((-2, -1, 1, 1000)))
        else:
            step.offset = None
            step.state.sequence = draw(st.sampled_from((MAX_SEQUENCE + 1, 2**64 - 1, MAX_SEQUENCE, 0, 1, 2**32)))
    return step


@st.composite
def full_cases(draw: st.DrawFn) -> StreamCase:
    serializer = draw(st.sampled_from(("json", "json", "protobuf")))
    return StreamCase(serializer, [draw(_maybe_mutated_step(draw(full_states(serializer))))], reconnect=draw(_reconnects()))


@functools.cache
def _reconnects() -> st.SearchStrategy[bool]:
    return st.sampled_from((False,) * 9 + (True,))


@st.composite
def delta_cases(draw: st.DrawFn) -> StreamCase:
    serializer = draw(st.sampled_from(("json", "json", "protobuf")))
    steps: list[Step | sync_pb2.EdgeMessage] = [
        draw(_maybe_mutated_step(draw(delta_states(serializer)))) for _ in range(draw(st.integers(1, 3)))
    ]
    return StreamCase(serializer, steps, reconnect=draw(_reconnects()))


@st.composite
def against_cases(draw: st.DrawFn) -> StreamCase:
    serializer = draw(st.sampled_from(("json", "protobuf")))
    return StreamCase(serializer, [draw(_maybe_mutated_step(draw(full_states(serializer, against=True))))], versions=True)


def _split(state: sync_pb2.ClusterState, parts: int) -> list[Step]:
    items = list(state.resources)
    size = max(1, math.ceil(len(items) / parts))
    groups = [items[i : i + size] for i in range(0, len(items), size)] or [[]]
    while len(groups) < parts:
        groups.append([])
    steps = []
    for index, group in enumerate(groups):
        chunk = sync_pb2.ClusterState()
        chunk.CopyFrom(state)
        chunk.ClearField("resources")
        chunk.resources.extend(group)
        chunk.chunk.index, chunk.chunk.count = index, len(groups)
        steps.append(Step(chunk, offset=index, snapshot_offset=0))
    return steps


@st.composite
def chunked_cases(draw: st.DrawFn) -> StreamCase:
    """A chunk set, and sometimes a chunk dropped, repeated, swapped or mutated, a sequence skipped, or
    another state in between; sequences follow the order sent, as a real edge's do."""
    serializer = draw(st.sampled_from(("json", "protobuf")))
    steps: list[Step] = _split(draw(full_states(serializer)), draw(st.integers(2, 4)))
    for _ in range(draw(st.integers(0, 2))):
        op = draw(st.sampled_from(("drop", "repeat", "swap", "mutate", "mutate", "snapshot", "between")))
        at = draw(st.integers(0, len(steps) - 1))
        if op == "drop" and len(steps) > 1:
            del steps[at]
        elif op == "repeat":
            steps.insert(at, dataclasses.replace(steps[at], mutated=True))
        elif op == "swap" and len(steps) > 1:
            other = draw(st.integers(0, len(steps) - 1))
            steps[at], steps[other] = steps[other], steps[at]
            steps[at].mutated = steps[other].mutated = True
        elif op == "mutate":
            state: sync_pb2.ClusterState = draw(mutated(steps[at].state, _STATE_SKIP))  # type: ignore[assignment]
            snapshot = steps[at].snapshot_offset if state.chunk.snapshot_sequence == 0 else None
            steps[at] = Step(state, snapshot_offset=snapshot, mutated=True)
        elif op == "snapshot":
            steps[at] = dataclasses.replace(steps[at], snapshot_offset=draw(st.sampled_from((-1, 1, 5))), mutated=True)
        else:
            steps.insert(at, Step(draw(delta_states(serializer)), mutated=True))
    gaps = draw(st.lists(st.integers(0, len(steps) - 1), max_size=1))
    for position, step in enumerate(steps):
        step.offset = position + sum(1 for gap in gaps if gap <= position)
    return StreamCase(serializer, list(steps))


@st.composite
def heartbeat_cases(draw: st.DrawFn) -> StreamCase:
    """Heartbeats with odd times, empty messages and second Identifies between states."""
    serializer = "json"
    steps: list[Step | sync_pb2.EdgeMessage] = []
    for _ in range(draw(st.integers(1, 5))):
        what = draw(st.sampled_from(("heartbeat", "heartbeat", "empty", "identify", "delta")))
        if what == "heartbeat":
            beat = sync_pb2.Heartbeat()
            if draw(st.booleans()):
                _set_time(beat.time, draw(timestamps()))
            steps.append(sync_pb2.EdgeMessage(heartbeat=beat))
        elif what == "empty":
            steps.append(sync_pb2.EdgeMessage())
        elif what == "identify":
            second: sync_pb2.Identify = draw(mutated(_identify(FUZZ, FUZZ_EDGE, TOKENS[FUZZ]).identify))  # type: ignore[assignment]
            steps.append(sync_pb2.EdgeMessage(identify=second))
        else:
            steps.append(Step(base_state(sync_pb2.STATE_TYPE_DELTA)))
    return StreamCase(serializer, steps)


def _identify(cluster: str, edge_id: str, token: str = "", protocol: int = 2, **extra: Any) -> sync_pb2.EdgeMessage:
    identify = sync_pb2.Identify(
        protocol_version=protocol, cluster_id=cluster, edge_id=edge_id, token=token, serializers=["json"],
        sync_interval_seconds=30.0, kinds=list(KINDS), metadata={"region": "fuzz"}, **extra,
    )  # fmt: skip
    return sync_pb2.EdgeMessage(identify=identify)


@st.composite
def handshake_cases(draw: st.DrawFn) -> HandshakeCase:
    cluster = draw(st.sampled_from((HANDSHAKE, HANDSHAKE, VICTIM, FUZZ)))
    in_metadata = draw(st.booleans())
    token = draw(st.sampled_from((TOKENS[HANDSHAKE], TOKENS[HANDSHAKE], "wrong", "")))
    base = _identify(
        cluster, draw(st.sampled_from(("hs-edge", "hs-edge-2"))), "" if in_metadata else token,
        protocol=draw(st.sampled_from((1, 2))), want_versions=draw(st.booleans()),
        instance_key=draw(st.binary(max_size=8)),
    )  # fmt: skip
    base.identify.serializers[:] = draw(st.lists(st.sampled_from(("json", "protobuf", "yaml")), min_size=1, max_size=3))
    what = draw(st.sampled_from(("identify", "mutated", "mutated", "mutated", "other")))
    if what == "mutated":
        first: sync_pb2.EdgeMessage = draw(mutated(base, most=4))  # type: ignore[assignment]
    elif what == "other":
        first = draw(st.sampled_from((
            sync_pb2.EdgeMessage(), sync_pb2.EdgeMessage(heartbeat=sync_pb2.Heartbeat()),
            sync_pb2.EdgeMessage(state=base_state(sync_pb2.STATE_TYPE_FULL)),
        )))  # fmt: skip
    else:
        first = base
    then = [draw(st.sampled_from((sync_pb2.EdgeMessage(heartbeat=sync_pb2.Heartbeat()), base, sync_pb2.EdgeMessage())))
            for _ in range(draw(st.integers(0, 2)))]  # fmt: skip
    metadata_token = token if in_metadata else draw(st.sampled_from((None, "wrong", "")))
    return HandshakeCase(metadata_token or None, first, then)


SYNC_METHOD = "/navigator.v1.Sync/Connect"
QUERY_METHODS: dict[str, tuple[type[Message], type[Message], bool]] = {
    # name -> (request, response, server-streaming)
    "ListClusters": (query_pb2.ListClustersRequest, query_pb2.ListClustersResponse, False),
    "ListResources": (query_pb2.ListResourcesRequest, query_pb2.ResourcePage, True),
    "ListChanges": (query_pb2.ListChangesRequest, query_pb2.ChangePage, True),
    "Diff": (query_pb2.DiffRequest, query_pb2.DiffPage, True),
    "Watch": (query_pb2.WatchRequest, query_pb2.ChangePage, True),
}


@st.composite
def raw_cases(draw: st.DrawFn) -> RawCase:
    """Random bytes, and valid messages truncated, bit-flipped or with bytes appended."""
    method = draw(st.sampled_from((SYNC_METHOD, SYNC_METHOD, *(f"/navigator.v1.Query/{m}" for m in QUERY_METHODS))))
    if method == SYNC_METHOD:
        valid = draw(st.sampled_from((
            _identify(HANDSHAKE, "raw-edge", TOKENS[HANDSHAKE]), sync_pb2.EdgeMessage(state=base_state(2)),
            sync_pb2.EdgeMessage(heartbeat=sync_pb2.Heartbeat()),
        ))).SerializeToString()  # fmt: skip
    else:
        request_type = QUERY_METHODS[method.rsplit("/", 1)[1]][0]
        valid = request_type(**({"cluster": VICTIM} if "cluster" in request_type.DESCRIPTOR.fields_by_name else {})
                             ).SerializeToString()  # fmt: skip
    how = draw(st.sampled_from(("random", "truncate", "flip", "append", "random")))
    if how == "random":
        data = draw(st.binary(max_size=64))
    elif how == "truncate":
        data = valid[: draw(st.integers(0, max(0, len(valid) - 1)))]
    elif how == "flip" and valid:
        at = draw(st.integers(0, len(valid) - 1))
        data = valid[:at] + bytes([valid[at] ^ draw(st.integers(1, 255))]) + valid[at + 1 :]
    else:
        data = valid + draw(st.binary(min_size=1, max_size=16))
    prefix = []
    if method == SYNC_METHOD and draw(st.booleans()):
        prefix = [_identify(HANDSHAKE, "raw-edge", TOKENS[HANDSHAKE])]
    return RawCase(method, data, prefix)


@functools.cache
def _relative_times() -> st.SearchStrategy[float]:
    return st.sampled_from((-1.0, -60.0, -3600.0, 0.0, 1.0, 4.0, 6.0, 3600.0, -8 * 86400.0, -1e-9))


@st.composite
def query_cases(draw: st.DrawFn, method: str) -> QueryCase:
    request_type = QUERY_METHODS[method][0]
    names = request_type.DESCRIPTOR.fields_by_name
    values: dict[str, Any] = {}
    for name in ("cluster",):
        if name in names:
            values[name] = draw(st.sampled_from(("", VICTIM, FUZZ, "nope")))
    if "kind" in names:
        values["kind"] = draw(st.sampled_from(("", *KINDS)))
    if "namespace" in names:
        values["namespace"] = draw(st.sampled_from(("", "default", "kube-system")))
    if "label_selector" in names:
        values["label_selector"] = draw(st.sampled_from(("", "app=web", "app in (web,db),!legacy", "tier!=x", "app")))
    if "limit" in names:
        values["limit"] = draw(st.sampled_from((0, 1, 3, 100)))
    if "data_as_json" in names:
        values["data_as_json"] = draw(st.booleans())
    if "initial" in names:
        values["initial"] = draw(st.booleans())
    request = request_type(**values)
    times = {}
    for fd in request_type.DESCRIPTOR.fields:
        is_time = fd.message_type is not None and fd.message_type.full_name == "google.protobuf.Timestamp"
        if is_time and (fd.name == "from_time" or draw(st.booleans())):
            times[fd.name] = draw(_relative_times())
    if draw(st.integers(0, 2)):
        request = draw(mutated(request, most=3))
        times = {k: v for k, v in times.items() if not request.HasField(k) or draw(st.booleans())}
    return QueryCase(method, request, times)


# -- the runner ---------------------------------------------------------------------------

#: key -> (uid, resourceVersion, labels, data JSON or None when not compared)
Snapshot = dict[tuple[str, str, str], tuple[str, str, dict[str, str], bytes | None]]


class _LogWatch(logging.Handler):
    """Errors and tracebacks anyone logged (loguru, the standard library's logging, the event loop)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.problems: list[str] = []

    def loguru_sink(self, message: Any) -> None:
        record = message.record
        if record["level"].no >= logging.ERROR or record["exception"] is not None:
            self.problems.append(f"{record['level'].name} {record['name']}: {record['message']}\n{record['exception'] or ''}")

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + "".join(traceback.format_exception(*record.exc_info))
            self.problems.append(f"{record.levelname} {record.name}: {text}")

    def loop_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        detail = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self.problems.append(f"event loop: {context.get('message')}\n{detail}")

    def take(self) -> list[str]:
        problems, self.problems = self.problems, []
        return problems


@dataclass
class _Stream:
    """One ``Sync/Connect`` call of the fuzzer's own cluster."""

    call: Any
    serializer: str
    last: int = 0
    #: The largest message the manager takes (``Accept.max_message_bytes``).
    max_message: int = 0
    #: A sequence was sent as drawn (not placed after ``last``): the stream's last is not known for sure.
    odd: bool = False

    def done(self) -> bool:
        return bool(self.call.done())


def _answer_text(text: str, what: str) -> None:
    if len(text) > MAX_REPLY_TEXT:
        raise PropertyFailed(f"{what} is {len(text)} characters long (more than {MAX_REPLY_TEXT}): {text[:300]}…")


class FuzzRunner:
    """One real manager (gRPC on 127.0.0.1, real storage), a victim cluster and the fuzzer's streams.

    ``manager_options`` go to ``run_test_manager`` (``storage``, ``storage_options``, ...).
    Used as a context manager; ``run(case)`` sends one case and checks every property,
    raising ``PropertyFailed``.
    """

    def __init__(self, tmp_path: Path, **manager_options: Any) -> None:
        self.tmp_path = tmp_path
        self.options = {"tokens": TOKENS, "grace_period": 0.2, "heartbeat": 3600, **manager_options}
        self._runner = asyncio.Runner()
        self._stack = contextlib.AsyncExitStack()
        self._logs = _LogWatch()
        self._log_ids: list[int] = []
        self.mgr: TestManager | None = None
        self._channel: grpc.aio.Channel | None = None
        self._stream: _Stream | None = None
        self._model: Snapshot = {}
        #: Whether ``_model`` is known (a case whose effect the fuzzer cannot tell leaves it unknown).
        self._modelled = True
        self._victim: tuple[Snapshot, tuple[Any, ...]] | None = None
        self._victim_synced = 0
        self._last_snapshots: dict[str, Snapshot] = {}
        self._instance = b"fuzz-instance-key"
        self.started = 0.0
        self.cases = 0

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> FuzzRunner:
        self._runner.__enter__()
        self._log_ids.append(logger.add(self._logs.loguru_sink, level="WARNING", format="{message}"))
        logging.getLogger().addHandler(self._logs)
        self._runner.get_loop().set_exception_handler(self._logs.loop_handler)
        try:
            self._runner.run(self._start())
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._runner.run(self._stop())
        finally:
            self._runner.__exit__(None, None, None)
            logging.getLogger().removeHandler(self._logs)
            for handler_id in self._log_ids:
                logger.remove(handler_id)

    async def _start(self) -> None:
        self.started = time.time()
        self.mgr = await self._stack.enter_async_context(run_test_manager(self.tmp_path, **self.options))
        self._channel = grpc.aio.insecure_channel(
            self.mgr.address, options=[("grpc.max_send_message_length", 256 * 1024 * 1024),
                                       ("grpc.max_receive_message_length", 256 * 1024 * 1024)]
        )  # fmt: skip
        await self._sync_victim()
        await self._reconnect("json")
        seed = base_state(sync_pb2.STATE_TYPE_FULL)
        seed.kinds.extend(KINDS)
        for i, name in enumerate(("web-1", "db-0", "ünïcode", "a" * 200)):
            seed.resources.add(kind="pods", namespace="default", name=name, uid=f"uid-{i}", resource_version="1",
                               labels={"app": "web" if i % 2 else "db", "tier": "x"}, payload=b'{"phase":"Running"}')  # fmt: skip
        seed.counts.update({"pods": 4, "services": 0, "endpointslices": 0})
        ack = await self._send_state(Step(seed))
        if ack.status != sync_pb2.ACK_STATUS_APPLIED:
            raise RuntimeError(f"the fuzzer's first state was not applied: {ack}")
        self._model = (await self._snapshots()).get(FUZZ, {})
        if problems := self._logs.take():
            raise RuntimeError("the manager logged errors while starting:\n" + "\n".join(problems))

    async def _stop(self) -> None:
        if self._stream is not None:
            self._stream.call.cancel()
        if self._channel is not None:
            await self._channel.close()
        await self._stack.aclose()

    async def _sync_victim(self) -> None:
        """A well-behaved edge syncs the victim and stays connected (protocol 1: no heartbeats owed)."""
        assert self._channel is not None
        call = sync_pb2_grpc.SyncStub(self._channel).Connect(metadata=(("authorization", f"Bearer {TOKENS[VICTIM]}"),))
        self._stack.callback(call.cancel)
        await call.write(_identify(VICTIM, "victim-edge", protocol=1))
        answer = await call.read()
        if answer.WhichOneof("body") != "accept":
            raise RuntimeError(f"the victim's edge was not accepted: {answer}")
        state = base_state(sync_pb2.STATE_TYPE_FULL)
        state.edge_id, state.cluster_id, state.sequence = "victim-edge", VICTIM, 1
        state.kinds.extend(KINDS)
        for i in range(12):
            kind = KINDS[i % 3]
            state.resources.add(kind=kind, namespace=("default", "prod")[i % 2], name=f"{kind}-{i}", uid=f"victim-uid-{i}",
                                resource_version=str(100 + i), labels={"app": ("web", "db")[i % 2], "tier": "x"},
                                payload=orjson.dumps({"n": i, "phase": "Running", "nested": {"a": [1, 2.5, None]}}))  # fmt: skip
        for kind in KINDS:
            state.counts[kind] = 4
        await call.write(sync_pb2.EdgeMessage(state=state))
        answer = await call.read()
        if answer.ack.status != sync_pb2.ACK_STATUS_APPLIED:
            raise RuntimeError(f"the victim's state was not applied: {answer}")
        self._victim_synced = time.time_ns()
        self._victim = await self._victim_view()

    async def _victim_view(self) -> tuple[Snapshot, tuple[Any, ...]]:
        """The victim's objects and cluster record; its history is checked in ``_check_world``."""
        assert self._channel is not None
        stub = query_pb2_grpc.QueryStub(self._channel)
        info = (await stub.ListClusters(query_pb2.ListClustersRequest(cluster=VICTIM))).clusters
        row = tuple((c.cluster, c.edge_id, c.connected, dict(c.metadata), c.sync_interval_seconds, len(c.errors)) for c in info)
        self._last_snapshots = await self._snapshots()
        return self._last_snapshots.get(VICTIM, {}), row

    async def _snapshots(self) -> dict[str, Snapshot]:
        """Every cluster's objects (as JSON), in one query."""
        assert self._channel is not None
        out: dict[str, Snapshot] = {}
        request = query_pb2.ListResourcesRequest(data_as_json=True)
        async for page in query_pb2_grpc.QueryStub(self._channel).ListResources(request):
            for r in page.resources:
                out.setdefault(r.cluster, {})[(r.kind, r.namespace, r.name)] = (
                    r.uid, r.resource_version, dict(r.labels), r.data_json
                )  # fmt: skip
        return out

    async def _reconnect(self, serializer: str, versions: bool = False, drop_first: bool = False) -> _Stream:
        """The fuzzer's stream of its own cluster (same edge id and process key: it takes over at once).

        The old stream is cancelled first with ``drop_first`` (a connection that broke), else once
        the new one is accepted (which ends the old one with ALREADY_EXISTS)."""
        assert self._channel is not None
        old, self._stream = self._stream, None
        if drop_first and old is not None:
            old.call.cancel()
        call = sync_pb2_grpc.SyncStub(self._channel).Connect(metadata=(("authorization", f"Bearer {TOKENS[FUZZ]}"),))
        message = _identify(FUZZ, FUZZ_EDGE, protocol=2, want_versions=versions, instance_key=self._instance)
        message.identify.serializers[:] = [serializer]
        await call.write(message)
        answer = await asyncio.wait_for(call.read(), ANSWER_TIMEOUT)
        if answer is grpc.aio.EOF or answer.WhichOneof("body") != "accept":
            raise PropertyFailed(f"the fuzzer's own edge was not accepted: {answer} ({await call.code()}: {await call.details()})")
        self._stream = _Stream(call, serializer, max_message=answer.accept.max_message_bytes)
        if old is not None:
            old.call.cancel()
        if versions:
            held: Snapshot = {}
            while True:
                page = await asyncio.wait_for(call.read(), ANSWER_TIMEOUT)
                if page is grpc.aio.EOF or page.WhichOneof("body") != "versions":
                    raise PropertyFailed(f"expected Versions pages after versions_follow, got {page}")
                for key in page.versions.keys:
                    held[(key.kind, key.namespace, key.name)] = (key.uid, key.resource_version, {}, None)
                if page.versions.last:
                    break
            expected: Snapshot = {k: (v[0], v[1], {}, None) for k, v in self._model.items()}
            if held != expected:
                raise PropertyFailed(f"the Versions pages differ from what the cluster holds: {_diff(expected, held)}")
        return self._stream

    # -- one case ----------------------------------------------------------------------

    def run(self, case: StreamCase | HandshakeCase | RawCase | QueryCase) -> None:
        """Send ``case``, then check every property; ``PropertyFailed`` says which one did not hold."""
        self.cases += 1
        self._runner.run(self._run(case))

    async def _run(self, case: StreamCase | HandshakeCase | RawCase | QueryCase) -> None:
        self._logs.take()
        if isinstance(case, StreamCase):
            await self._stream_case(case)
        elif isinstance(case, HandshakeCase):
            await self._handshake_case(case)
        elif isinstance(case, RawCase):
            await self._raw_case(case)
        else:
            await self._query_case(case)
        await self._check_world()

    async def _stream_case(self, case: StreamCase) -> None:
        try:
            await self._stream_steps(case)
        except _Oversized:
            self._modelled = False  # what came before it in the case may have applied: read it back

    async def _stream_steps(self, case: StreamCase) -> None:
        stream = self._stream
        if case.reconnect or case.versions or stream is None or stream.done() or stream.serializer != case.serializer:
            stream = await self._reconnect(case.serializer, case.versions, drop_first=case.reconnect)
        if stream.last > MAX_SEQUENCE - 10_000 or stream.odd:
            stream = await self._reconnect(case.serializer)
        pending: sync_pb2.ClusterState | None = None  # the chunk set as the manager buffers it
        modelled = True
        ack = sync_pb2.Ack()
        for step in case.steps:
            if isinstance(step, sync_pb2.EdgeMessage):
                await self._write(step)
                if step.WhichOneof("body") == "heartbeat":
                    answer = await self._read()
                    if answer.WhichOneof("body") != "heartbeat":
                        raise PropertyFailed(f"a Heartbeat was answered with {_short(answer)}")
                continue
            state = step.state
            ack = await self._send_state(step)
            is_chunk = state.HasField("chunk") and state.chunk.count > 1
            if ack.status == sync_pb2.ACK_STATUS_BUFFERED:
                if not is_chunk:
                    raise PropertyFailed(f"a state that is no chunk was acknowledged BUFFERED: {ack}")
                if state.chunk.index == 0:
                    pending = sync_pb2.ClusterState()
                    pending.CopyFrom(state)
                elif pending is not None:
                    pending.resources.extend(state.resources)
                else:
                    modelled = False
            elif ack.status == sync_pb2.ACK_STATUS_APPLIED:
                applied = state
                if is_chunk:
                    if pending is None:
                        raise PropertyFailed(f"the last chunk of a set was APPLIED without its earlier chunks: {ack}")
                    pending.resources.extend(state.resources)
                    applied = pending
                pending = None
                if modelled:
                    _apply(self._model, applied, stream.serializer == "json")
            else:
                pending = None
        # The stream still serves, and a chunk set left incomplete ends: an empty DELTA is applied.
        last = case.steps[-1] if case.steps else None
        if not isinstance(last, Step) or ack.status == sync_pb2.ACK_STATUS_BUFFERED:
            probe = await self._send_state(Step(base_state(sync_pb2.STATE_TYPE_DELTA)))
            if probe.status != sync_pb2.ACK_STATUS_APPLIED:
                raise PropertyFailed(f"an empty DELTA after the case was not applied: {probe}")
        self._modelled = modelled

    async def _write(self, message: sync_pb2.EdgeMessage) -> None:
        assert self._stream is not None
        try:
            await self._stream.call.write(message)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError) as exc:
            raise PropertyFailed(f"the manager ended the fuzzer's stream: {await self._ended()} ({exc})") from None

    async def _read(self) -> sync_pb2.ManagerMessage:
        assert self._stream is not None
        try:
            answer = await asyncio.wait_for(self._stream.call.read(), ANSWER_TIMEOUT)
        except TimeoutError:
            raise PropertyFailed(f"no answer within {ANSWER_TIMEOUT:g}s") from None
        except grpc.aio.AioRpcError:
            answer = grpc.aio.EOF
        if answer is grpc.aio.EOF:
            raise PropertyFailed(f"the manager ended the fuzzer's stream: {await self._ended()}")
        return answer

    async def _ended(self) -> str:
        assert self._stream is not None
        return f"{await self._stream.call.code()}: {await self._stream.call.details()}"

    async def _send_state(self, step: Step) -> sync_pb2.Ack:
        """Send one state with its sequence placed after the stream's last; the Ack must answer it."""
        assert self._stream is not None
        stream = self._stream
        state = sync_pb2.ClusterState()
        state.CopyFrom(step.state)
        base = stream.last + 1
        if step.offset is not None:
            state.sequence = min(max(0, base + step.offset), 2**64 - 1)
        else:
            stream.odd = True  # whatever the manager made of it, the next case starts on a new stream
        if step.snapshot_offset is not None:
            state.chunk.snapshot_sequence = min(max(0, base + step.snapshot_offset), 2**64 - 1)
        message = sync_pb2.EdgeMessage(state=state)
        await self._write(message)
        if message.ByteSize() > stream.max_message:
            # More than the manager takes: gRPC ends the call, RESOURCE_EXHAUSTED, before the manager sees it.
            with contextlib.suppress(PropertyFailed):
                await self._read()
            code = await stream.call.code()
            if code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise PropertyFailed(f"a {message.ByteSize()}-byte state (the limit is {stream.max_message}) ended with {code}")
            raise _Oversized()
        answer = await self._read()
        while answer.WhichOneof("body") == "heartbeat":
            answer = await self._read()
        if answer.WhichOneof("body") != "ack":
            raise PropertyFailed(f"a state was answered with {_short(answer)}")
        ack = answer.ack
        if ack.sequence != state.sequence:
            raise PropertyFailed(f"the Ack is for sequence {ack.sequence}, the state had {state.sequence}")
        if stream.last < state.sequence <= MAX_SEQUENCE:
            stream.last = state.sequence  # the manager takes any sequence above the last as the stream's last
        if ack.status == sync_pb2.ACK_STATUS_RETRY:
            raise PropertyFailed(f"RETRY (storage is healthy: an error was taken for a storage failure): {ack.error}")
        if ack.status == sync_pb2.ACK_STATUS_INVALID:
            if not ack.error.strip():
                raise PropertyFailed("an INVALID ack without a reason")
            _answer_text(ack.error, "an INVALID ack's error")
        elif ack.status not in (sync_pb2.ACK_STATUS_APPLIED, sync_pb2.ACK_STATUS_BUFFERED):
            raise PropertyFailed(f"an Ack with status {ack.status}: {ack}")
        elif ack.error:
            raise PropertyFailed(f"an {sync_pb2.AckStatus.Name(ack.status)} ack with an error: {ack.error}")
        return ack

    def _expect_model(self, held: Snapshot) -> None:
        """What the fuzzer's cluster holds is what the states acknowledged APPLIED make of it."""
        if (self._stream is not None and self._stream.serializer != "json") or any(v[3] is None for v in self._model.values()):
            compared: Snapshot = {k: (v[0], v[1], v[2], None) for k, v in held.items()}
            model: Snapshot = {k: (v[0], v[1], v[2], None) for k, v in self._model.items()}
        else:
            compared, model = held, self._model
        self._model = held
        if not self._modelled:
            self._modelled = True
        elif compared != model:
            raise PropertyFailed(f"the fuzzer's cluster is not what the applied states make of it: {_diff(model, compared)}")

    async def _handshake_case(self, case: HandshakeCase) -> None:
        assert self._channel is not None
        metadata = (("authorization", f"Bearer {case.token}"),) if case.token else None
        call = sync_pb2_grpc.SyncStub(self._channel).Connect(metadata=metadata)
        try:
            await call.write(case.first)
            answer = await _read_or_end(call)
            if answer is not None and answer.WhichOneof("body") == "accept":
                accept = answer.accept
                offered = list(case.first.identify.serializers)
                if accept.serializer not in offered:
                    raise PropertyFailed(f"Accept chose serializer {accept.serializer!r}, not one of {offered}")
                if accept.versions_follow:
                    while True:
                        page = await _read_or_end(call)
                        if page is None or page.WhichOneof("body") != "versions":
                            raise PropertyFailed(f"expected Versions pages, got {page}")
                        if page.versions.last:
                            break
                for message in case.then:
                    await call.write(message)
                await call.done_writing()
                while (extra := await _read_or_end(call)) is not None:
                    if extra.WhichOneof("body") != "heartbeat":
                        raise PropertyFailed(f"after Accept, {_short(case.then[0]) if case.then else ''} got {_short(extra)}")
                code, details = await call.code(), await call.details()
                if code not in (grpc.StatusCode.OK, *REFUSAL_CODES, grpc.StatusCode.UNAVAILABLE):
                    raise PropertyFailed(f"an accepted stream ended with {code}: {details}")
                return
            code, details = await call.code(), await call.details()
            if answer is not None:
                if answer.WhichOneof("body") != "reject":
                    raise PropertyFailed(f"the first answer was {_short(answer)}, neither Accept nor Reject")
                reject = answer.reject
                if reject.reason not in REJECT_STATUS or not reject.message.strip():
                    raise PropertyFailed(f"a Reject without a known reason or a message: {reject}")
                _answer_text(reject.message, "a Reject's message")
                if code != REJECT_STATUS[reject.reason] or details != reject.message:
                    raise PropertyFailed(f"Reject {reject.reason} ({reject.message!r}) ended the call with {code}: {details!r}")
            _check_status(code, details, "the handshake", also=(grpc.StatusCode.UNAVAILABLE,))
        finally:
            call.cancel()

    async def _raw_case(self, case: RawCase) -> None:
        assert self._channel is not None
        if case.method == SYNC_METHOD:
            call = self._channel.stream_stream(SYNC_METHOD, request_serializer=None,
                                               response_deserializer=sync_pb2.ManagerMessage.FromString)(
                metadata=(("authorization", f"Bearer {TOKENS[HANDSHAKE]}"),))  # fmt: skip
            try:
                for message in case.prefix:
                    await call.write(message.SerializeToString())
                await call.write(case.data)
                await call.done_writing()
                while await _read_or_end(call) is not None:
                    pass
                _check_status(await call.code(), await call.details(), "the sync stream",
                              also=(grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE))  # fmt: skip
            finally:
                call.cancel()
            return
        name = case.method.rsplit("/", 1)[1]
        response_type, streaming = QUERY_METHODS[name][1], QUERY_METHODS[name][2]
        if streaming:
            stream_call = self._channel.unary_stream(case.method, request_serializer=None,
                                                     response_deserializer=response_type.FromString)(case.data)  # fmt: skip
            await _drain(stream_call, watch=name == "Watch", what=name)
        else:
            unary = self._channel.unary_unary(case.method, request_serializer=None,
                                              response_deserializer=response_type.FromString)  # fmt: skip
            try:
                await unary(case.data, timeout=ANSWER_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                _check_status(exc.code(), exc.details() or "", name)

    async def _query_case(self, case: QueryCase) -> None:
        assert self._channel is not None
        request = type(case.request)()
        request.CopyFrom(case.request)
        now = time.time()
        for name, offset in case.times.items():
            getattr(request, name).FromNanoseconds(int((now + offset) * 1e9))
        stub = query_pb2_grpc.QueryStub(self._channel)
        if case.method == "ListClusters":
            try:
                response = await stub.ListClusters(request, timeout=ANSWER_TIMEOUT)
            except grpc.aio.AioRpcError as exc:
                _check_status(exc.code(), exc.details() or "", "ListClusters")
                return
            assert isinstance(request, query_pb2.ListClustersRequest)
            for info in response.clusters:
                if request.cluster and info.cluster != request.cluster:
                    raise PropertyFailed(f"ListClusters for {request.cluster!r} answered {info.cluster!r}")
            return
        records = await _drain(getattr(stub, case.method)(request), watch=case.method == "Watch", what=case.method)
        _check_filters(case.method, request, records)

    # -- after every case ----------------------------------------------------------------

    async def _check_world(self) -> None:
        """The manager answers every query; the victim holds what it held; the fuzzer's cluster what the
        applied states make of it; nobody logged an error."""
        assert self._channel is not None and self._victim is not None
        health = await health_pb2_grpc.HealthStub(self._channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        if health.status != health_pb2.HealthCheckResponse.SERVING:
            raise PropertyFailed(f"the manager's health is {health.status}")
        stub = query_pb2_grpc.QueryStub(self._channel)
        try:
            async for _ in stub.ListResources(query_pb2.ListResourcesRequest()):  # data as Structs, every cluster
                pass
            victim_changes = []
            async for page in stub.ListChanges(query_pb2.ListChangesRequest(limit=200)):
                victim_changes += [c for c in page.changes if c.cluster == VICTIM and c.applied_at.ToNanoseconds() > self._victim_synced]
            since = query_pb2.DiffRequest()
            since.from_time.FromNanoseconds(int(max(self.started, time.time() - 600) * 1e9))
            async for _ in stub.Diff(since):
                pass
            victim = await self._victim_view()
            held = self._last_snapshots
        except grpc.aio.AioRpcError as exc:
            raise PropertyFailed(f"the manager no longer answers queries for every cluster: {exc.code()}: {exc.details()}") from None
        if victim != self._victim or victim_changes:
            before, after = self._victim, victim
            raise PropertyFailed(
                f"the victim cluster changed: objects {_diff(before[0], after[0])}; record {before[1]} -> {after[1]}; "
                f"{len(victim_changes)} changes recorded since it synced: {[_short(c, 300) for c in victim_changes[:3]]}"
            )
        self._expect_model(held.get(FUZZ, {}))
        await asyncio.sleep(0)
        gc.collect(1)  # a task whose exception nobody retrieved says so when collected (the young ones: cheap)
        if problems := self._logs.take():
            raise PropertyFailed("the manager logged errors:\n" + "\n".join(p[:3000] for p in problems))

    async def final_check(self) -> None:
        """After a run: no watch left subscribed, and nothing logged once everything is collected."""
        assert self.mgr is not None
        for _ in range(100):
            if not len(self.mgr.manager.feed):
                break
            await asyncio.sleep(0.05)
        else:
            raise PropertyFailed(f"{len(self.mgr.manager.feed)} watches are still subscribed after their callers left")
        gc.collect()
        if problems := self._logs.take():
            raise PropertyFailed("the manager logged errors:\n" + "\n".join(p[:3000] for p in problems))

    def check_at_end(self) -> None:
        self._runner.run(self.final_check())


def _apply(model: Snapshot, state: sync_pb2.ClusterState, with_data: bool) -> None:
    """What an APPLIED state makes of the stored objects (docs/protocol.md), as the edge expects it."""

    def entry(r: sync_pb2.Resource) -> tuple[str, str, dict[str, str], bytes | None]:
        return (r.uid, r.resource_version, dict(r.labels), r.payload if with_data else None)

    incoming = {(r.kind, r.namespace, r.name): r for r in state.resources}
    full = state.type == sync_pb2.STATE_TYPE_FULL
    if full and not state.against_versions:
        covered = set(state.kinds) | set(state.cached_kinds)
        for key in [k for k in model if k[0] in covered]:
            del model[key]
    else:
        for gone in state.deletions:
            key = (gone.kind, gone.namespace, gone.name)
            if key in incoming or key not in model or (gone.uid and gone.uid != model[key][0]):
                continue
            del model[key]
    for key, r in incoming.items():
        model[key] = entry(r)


def _diff(expected: Snapshot, actual: Snapshot) -> str:
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(k for k in set(expected) & set(actual) if expected[k] != actual[k])
    parts = []
    for name, keys in (("missing", missing), ("unexpected", extra)):
        if keys:
            parts.append(f"{name} {[_clip(k) for k in keys[:5]]}")
    for key in changed[:5]:
        parts.append(f"{_clip(key)}: expected {_clip(expected[key])}, stored {_clip(actual[key])}")
    return "; ".join(parts) or "equal"


def _clip(value: object, limit: int = 300) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


async def _read_or_end(call: Any) -> Any:
    try:
        message = await asyncio.wait_for(call.read(), ANSWER_TIMEOUT)
    except grpc.aio.AioRpcError:
        return None
    except TimeoutError:
        raise PropertyFailed(f"no answer and no end within {ANSWER_TIMEOUT:g}s") from None
    return None if message is grpc.aio.EOF else message


def _check_status(code: grpc.StatusCode, details: str, what: str, also: Sequence[grpc.StatusCode] = ()) -> None:
    if code not in REFUSAL_CODES and code not in also:
        raise PropertyFailed(f"{what} ended with {code}: {details}")
    if code != grpc.StatusCode.OK and not details.strip():
        raise PropertyFailed(f"{what} ended with {code} and no message")
    _answer_text(details, f"{what}'s status message")


async def _drain(call: Any, watch: bool, what: str) -> list[Message]:
    """A streaming call's records (a watch's first pages only: it never ends on its own)."""
    records: list[Message] = []

    async def read_all() -> None:
        async for page in call:
            records.extend(getattr(page, page.DESCRIPTOR.fields[0].name))

    try:
        if watch:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(read_all(), 0.02)
        else:
            await asyncio.wait_for(read_all(), ANSWER_TIMEOUT)
    except grpc.aio.AioRpcError as exc:
        _check_status(exc.code(), exc.details() or "", what)
    finally:
        call.cancel()
    return records


def _check_filters(method: str, request: Message, records: Sequence[Message]) -> None:
    """Every record answered matches the request's filters and limit."""
    fields = request.DESCRIPTOR.fields_by_name
    for name in ("cluster", "kind", "namespace", "name"):
        wanted = getattr(request, name) if name in fields else ""
        for record in records:
            if wanted and getattr(record, name) != wanted:
                raise PropertyFailed(f"{method} with {name}={wanted!r} answered a record with {getattr(record, name)!r}")
    limit = getattr(request, "limit", 0)
    if limit and len(records) > limit:
        raise PropertyFailed(f"{method} with limit {limit} answered {len(records)} records")
    if method == "ListChanges":
        times = [r.applied_at.ToNanoseconds() for r in records]  # type: ignore[attr-defined]
        if times != sorted(times, reverse=True):
            raise PropertyFailed("ListChanges answered changes that are not newest first")
    if method == "Diff":
        for record in records:
            if record.type not in ("ADDED", "REMOVED", "CHANGED"):  # type: ignore[attr-defined]
                raise PropertyFailed(f"Diff answered an entry of type {record.type!r}")  # type: ignore[attr-defined]


# -- message types and running them ----------------------------------------------------------


@dataclass(frozen=True)
class MessageType:
    name: str
    description: str
    strategy: Callable[[], st.SearchStrategy[Any]]


MESSAGE_TYPES: dict[str, MessageType] = {
    t.name: t
    for t in (
        MessageType("identify", "handshakes: Identify (mutated) or another first message", handshake_cases),
        MessageType("full", "FULL states", full_cases),
        MessageType("delta", "DELTA states (observed_at, deletions)", delta_cases),
        MessageType("chunked", "chunk sets (chunks dropped, repeated, swapped, mutated)", chunked_cases),
        MessageType("against_versions", "FULLs against the manager's Versions", against_cases),
        MessageType("heartbeat", "heartbeats, empty messages, second Identifies", heartbeat_cases),
        MessageType("raw_bytes", "undecodable and corrupted bytes on every method", raw_cases),
        *(
            MessageType(name, f"{name} requests", lambda name=name: query_cases(name))  # type: ignore[misc]
            for name in QUERY_METHODS
        ),
    )
}


#: Defects fuzzing found that await their fix: name -> (a text the failure's message contains, what
#: is wrong). ``run_message_type(..., tolerate_known=True)`` counts such a failure instead of stopping
#: at it, so that the rest of the type is still fuzzed. Empty: every defect found so far is fixed
#: (tests/manager/test_fuzz.py keeps their minimal cases).
KNOWN_DEFECTS: dict[str, tuple[str, str]] = {}


def known_defect(failure: str) -> str | None:
    """The name of the known defect ``failure`` (a ``PropertyFailed`` message) shows, if any."""
    return next((name for name, (marker, _) in KNOWN_DEFECTS.items() if marker in failure), None)


@dataclass
class TypeResult:
    name: str
    cases: int = 0
    seconds: float = 0.0
    #: The minimal failing examples and what failed, one text each.
    failures: list[str] = field(default_factory=list)
    #: Cases that showed a known defect (``KNOWN_DEFECTS``), by name.
    known: dict[str, int] = field(default_factory=dict)


def run_message_type(runner: FuzzRunner, name: str, cases: int, seed: int | None = None,
                     on_case: Callable[[int], None] | None = None, tolerate_known: bool = False) -> TypeResult:  # fmt: skip
    """Run ``cases`` examples of one message type through ``runner``; failures come back shrunk to a
    minimal example (fixed ``seed``: the same cases every time; ``None``: derandomized). With
    ``tolerate_known``, failures that show a ``KNOWN_DEFECTS`` entry are counted, not raised."""
    result = TypeResult(name)
    strategy = MESSAGE_TYPES[name].strategy()
    reports: list[str] = []

    def test(case: Any) -> None:
        result.cases += 1
        if on_case is not None:
            on_case(result.cases)
        try:
            runner.run(case)
        except PropertyFailed as exc:
            known = known_defect(str(exc)) if tolerate_known else None
            if known is None:
                raise
            result.known[known] = result.known.get(known, 0) + 1
    configured = hypothesis.settings(
        max_examples=cases,
        derandomize=seed is None,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
        print_blob=False,
        report_multiple_bugs=True,
    )
    wrapped = hypothesis.given(strategy)(test)
    if seed is not None:
        wrapped = hypothesis.seed(seed)(wrapped)
    started = time.perf_counter()
    try:
        with with_reporter(lambda text: reports.append(str(text))):
            configured(wrapped)()
        try:
            runner.check_at_end()
        except PropertyFailed as exc:
            if (known := known_defect(str(exc)) if tolerate_known else None) is None:
                raise
            result.known[known] = result.known.get(known, 0) + 1
    except BaseException as exc:  # every failure is reported, with its example
        if isinstance(exc, KeyboardInterrupt):
            raise
        errors = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else [exc]
        for error in errors:
            notes = "\n".join(getattr(error, "__notes__", []))
            text = f"{type(error).__name__}: {error}\n{notes}".strip()
            result.failures.append(text if len(text) <= 20_000 else f"{text[:20_000]}… ({len(text)} characters)")
        if not result.failures:
            result.failures.append("\n".join(reports))
    result.seconds = time.perf_counter() - started
    return result
