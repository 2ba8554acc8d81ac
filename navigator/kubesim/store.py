"""Objects as pre-serialised JSON, one global resourceVersion, and a bounded watch history.

Bodies are stored as the bytes of a list item (no kind/apiVersion for built-in kinds, as the
real server omits them there), so a list page is one ``b",".join``. Keys sort like etcd's
``/registry/<resource>/<namespace>/<name>`` keys, which fixes the list order.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from .errors import ApiError
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector

_BOOL_FIELDS = frozenset({"spec.unschedulable", "spec.hostNetwork"})
_EMPTY: dict[str, str] = {}

Listener = Callable[[ResourceType, "Entry | None", "Entry | None"], None]


class Entry:
    """One stored object: index fields kept apart so selectors never parse the body."""

    __slots__ = ("body", "fields", "key", "labels", "name", "namespace", "rv")

    def __init__(
        self,
        key: str,
        namespace: str,
        name: str,
        rv: int,
        labels: Mapping[str, str],
        fields: tuple[str, ...] | None,
        body: bytes,
    ) -> None:
        self.key = key
        self.namespace = namespace
        self.name = name
        self.rv = rv  # internal ordering rv; the object's own metadata.resourceVersion may differ
        self.labels = labels
        self.fields = fields
        self.body = body

    def field(self, rt: ResourceType, path: str) -> str:
        if path == "metadata.name":
            return self.name
        if path == "metadata.namespace":
            return self.namespace
        idx = rt.field_index.get(path)
        if idx is None or self.fields is None:
            return ""
        return self.fields[idx]

    def obj(self, rt: ResourceType) -> dict[str, Any]:
        """A fresh dict of the full object (callers may mutate it)."""
        d: dict[str, Any] = orjson.loads(rt.full(self.body))
        return d


class Event:
    """A history record; the encoded line is cached and shared by every watcher."""

    __slots__ = ("entry", "line", "old", "rt", "rv", "type")

    def __init__(self, rv: int, type_: str, rt: ResourceType, entry: Entry, old: Entry | None) -> None:
        self.rv = rv
        self.type = type_
        self.rt = rt
        self.entry = entry
        self.old = old
        self.line: bytes | None = None

    def encoded(self) -> bytes:
        line = self.line
        if line is None:
            line = b'{"type":"' + self.type.encode() + b'","object":' + self.rt.full(self.entry.body) + b"}\n"
            self.line = line
        return line


class Bucket:
    __slots__ = ("entries", "keys", "rt")

    def __init__(self, rt: ResourceType) -> None:
        self.rt = rt
        self.entries: dict[str, Entry] = {}
        self.keys: list[str] = []  # sorted


@dataclass(slots=True)
class Page:
    entries: list[Entry]
    rv: int
    next_key: str | None
    remaining: int | None


def object_key(rt: ResourceType, namespace: str, name: str) -> str:
    return f"{namespace}/{name}" if rt.namespaced else name


def extract_fields(rt: ResourceType, obj: Mapping[str, Any]) -> tuple[str, ...] | None:
    if not rt.field_paths:
        return None
    out: list[str] = []
    for path in rt.field_paths:
        cur: Any = obj
        for part in path.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is None:
            out.append("false" if path in _BOOL_FIELDS else "")
        elif isinstance(cur, bool):
            out.append("true" if cur else "false")
        else:
            out.append(str(cur))
    return tuple(out)


def dumps(obj: Any) -> bytes:
    """orjson.dumps, copied to an exact-size object: orjson's result keeps a buffer many times
    larger than the JSON, which for long-lived bodies would multiply the memory used."""
    return bytes(memoryview(orjson.dumps(obj)))


def encode_item(rt: ResourceType, obj: Mapping[str, Any]) -> bytes:
    """List-item bytes: built-ins drop kind/apiVersion; custom resources keep them, first."""
    if rt.custom:
        rest = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
        return dumps({"apiVersion": rt.api_version, "kind": rt.kind, **rest})
    if "kind" in obj or "apiVersion" in obj:
        obj = {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
    return dumps(obj)


class Store:
    """All objects of all kinds; every method is safe to call from any thread."""

    def __init__(self, history_limit: int = 20000) -> None:
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.rv = 0
        self.compacted_rv = 0
        self.history: list[Event] = []
        self.hist_base = 0  # sequence number of history[0]
        self.history_limit = history_limit
        self.buckets: dict[tuple[str, str, str], Bucket] = {}
        self.listeners: list[Listener] = []
        self.closed = False

    # -- buckets ---------------------------------------------------------------------------

    def bucket(self, rt: ResourceType) -> Bucket:
        b = self.buckets.get(rt.key)
        if b is None:
            with self.lock:
                b = self.buckets.setdefault(rt.key, Bucket(rt))
        return b

    def count(self, rt: ResourceType, namespace: str | None = None) -> int:
        b = self.bucket(rt)
        with self.lock:
            if namespace is None or not rt.namespaced:
                return len(b.keys)
            return bisect_left(b.keys, namespace + "0") - bisect_left(b.keys, namespace + "/")

    def get(self, rt: ResourceType, namespace: str, name: str) -> Entry | None:
        return self.bucket(rt).entries.get(object_key(rt, namespace, name))

    def keys(self, rt: ResourceType) -> list[str]:
        """The live sorted key list; hold ``lock`` while reading it."""
        return self.bucket(rt).keys

    # -- writes ----------------------------------------------------------------------------

    def reserve(self, n: int) -> int:
        """Allocate ``n`` consecutive resourceVersions; returns the first."""
        with self.lock:
            first = self.rv + 1
            self.rv += n
            return first

    def bump_past(self, rv: str | None) -> None:
        """Move the global rv past a numeric rv given by loaded data (like restoring etcd)."""
        if rv and rv.isdigit():
            with self.lock:
                self.rv = max(self.rv, int(rv))

    def put(self, rt: ResourceType, obj: dict[str, Any], *, keep_rv: bool = False) -> Entry:
        """Create or replace; sets metadata.resourceVersion unless ``keep_rv`` and one is present."""
        meta = obj.setdefault("metadata", {})
        with self.lock:
            self.rv += 1
            rv = self.rv
            if keep_rv and meta.get("resourceVersion"):
                self.bump_past(str(meta["resourceVersion"]))
                if self.rv > rv:  # the loaded rv jumped ahead: order this write after it
                    self.rv += 1
                    rv = self.rv
            else:
                meta["resourceVersion"] = str(rv)
            name = meta.get("name", "")
            ns = meta.get("namespace", "") if rt.namespaced else ""
            key = object_key(rt, ns, name)
            entry = Entry(key, ns, name, rv, dict(meta.get("labels") or _EMPTY), extract_fields(rt, obj),
                          encode_item(rt, obj))
            b = self.bucket(rt)
            old = b.entries.get(key)
            b.entries[key] = entry
            if old is None:
                i = bisect_left(b.keys, key)
                b.keys.insert(i, key)
            # history keeps only the old index fields (for selector transitions), not the old body
            prev = None if old is None else Entry(key, old.namespace, old.name, old.rv, old.labels, old.fields, b"")
            self._record(Event(rv, "ADDED" if old is None else "MODIFIED", rt, entry, prev))
            for fn in self.listeners:
                fn(rt, old, entry)
            return entry

    def remove(self, rt: ResourceType, key: str, final: dict[str, Any] | None = None) -> Entry:
        """Delete; the DELETED event carries the last state at a new resourceVersion."""
        with self.lock:
            b = self.bucket(rt)
            old = b.entries.pop(key)
            del b.keys[bisect_left(b.keys, key)]
            self.rv += 1
            obj = final if final is not None else old.obj(rt)
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
            gone = Entry(key, old.namespace, old.name, self.rv, old.labels, old.fields, encode_item(rt, obj))
            self._record(Event(self.rv, "DELETED", rt, gone, None))
            for fn in self.listeners:
                fn(rt, old, None)
            return gone

    def bulk_insert(self, rt: ResourceType, entries: Iterable[Entry]) -> None:
        """Insert without history (generated clusters start 'compacted', like a restored etcd)."""
        with self.lock:
            b = self.bucket(rt)
            for e in entries:
                b.entries[e.key] = e
            b.keys = sorted(b.entries)
            self.compacted_rv = max(self.compacted_rv, self.rv)
            self.cond.notify_all()

    def _record(self, ev: Event) -> None:
        self.history.append(ev)
        limit = self.history_limit
        if len(self.history) > limit + limit // 8:  # amortised: trim in batches
            self._trim(len(self.history) - limit)
        self.cond.notify_all()

    def _trim(self, drop: int) -> None:
        if drop <= 0:
            return
        drop = min(drop, len(self.history))
        self.compacted_rv = max(self.compacted_rv, self.history[drop - 1].rv)
        del self.history[:drop]
        self.hist_base += drop

    def compact(self) -> int:
        """Forget all history, as an etcd compaction would; returns the compacted rv."""
        with self.lock:
            self._trim(len(self.history))
            self.compacted_rv = self.rv
            self.cond.notify_all()
            return self.rv

    def set_history_limit(self, n: int) -> None:
        with self.lock:
            self.history_limit = max(0, n)
            self._trim(len(self.history) - self.history_limit)
            self.cond.notify_all()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.cond.notify_all()

    # -- reads -----------------------------------------------------------------------------

    def check_rv(self, rv: int, what: str = "resource version") -> None:
        if rv < self.compacted_rv:
            raise ApiError.expired(f"too old {what}: {rv} ({self.compacted_rv + 1})")

    def page(
        self,
        rt: ResourceType,
        namespace: str | None,
        *,
        start_after: str | None = None,
        limit: int = 0,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
    ) -> Page:
        b = self.bucket(rt)
        filtered = bool(labels) or bool(fields)
        with self.lock:
            keys, ents = b.keys, b.entries
            if namespace is not None and rt.namespaced:
                lo, hi = bisect_left(keys, namespace + "/"), bisect_left(keys, namespace + "0")
            else:
                lo, hi = 0, len(keys)
            if start_after is not None:
                lo = max(lo, bisect_right(keys, start_after))
            if not filtered:
                end = hi if limit <= 0 else min(hi, lo + limit)
                sel = keys[lo:end]
                out = [ents[k] for k in sel]
                nxt = sel[-1] if end < hi and sel else None
                return Page(out, self.rv, nxt, (hi - end) if nxt else None)
            out = []
            nxt = None
            for i in range(lo, hi):
                e = ents[keys[i]]
                if labels and not labels.matches(e.labels):
                    continue
                if fields and not fields.matches(partial(e.field, rt)):
                    continue
                out.append(e)
                if 0 < limit <= len(out):
                    if i + 1 < hi:
                        nxt = e.key
                    break
            return Page(out, self.rv, nxt, None)

    def watch_start(self, rv: int) -> int:
        """History sequence number of the first event after ``rv``; 410 if compacted away."""
        with self.lock:
            self.check_rv(rv)
            idx = bisect_right(self.history, rv, key=lambda e: e.rv)
            return self.hist_base + idx

    def read_events(self, seq: int, timeout: float) -> tuple[list[Event], int, int]:
        """Events from ``seq`` on (waiting up to ``timeout`` if none): (events, next seq, rv)."""
        with self.lock:
            if seq < self.hist_base:
                raise ApiError.expired(
                    f"too old resource version: watcher fell behind the retained history ({self.compacted_rv + 1})"
                )
            if seq == self.hist_base + len(self.history) and not self.closed and timeout > 0:
                self.cond.wait(timeout)
                if seq < self.hist_base:
                    raise ApiError.expired(
                        f"too old resource version: watcher fell behind the retained history "
                        f"({self.compacted_rv + 1})"
                    )
            evs = self.history[seq - self.hist_base :]
            return evs, seq + len(evs), self.rv
