"""Watch streams: chunked newline-delimited events from the store history, with bookmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from .errors import ApiError
from .resources import ResourceType
from .selectors import FieldSelector, LabelSelector
from .store import Entry, Event, Store
from .tables import table

Write = Callable[[bytes], None]


class WatchFormat:
    """How event objects are rendered: plain objects or (for kubectl get -w) one-row Tables."""

    def __init__(self, rt: ResourceType, table_version: str | None, include: str = "Metadata") -> None:
        self.rt = rt
        self.table_version = table_version
        self.include = include
        self.columns_sent = False

    def line(self, type_: str, entry: Entry, ev: Event | None = None) -> bytes:
        if self.table_version is None:
            if ev is not None and ev.type == type_:
                return ev.encoded()
            return b'{"type":"' + type_.encode() + b'","object":' + self.rt.full(entry.body) + b"}\n"
        rv = (orjson.loads(entry.body).get("metadata") or {}).get("resourceVersion", "")
        t = table(self.rt, [entry.body], version=self.table_version, include=self.include,
                  list_meta={"resourceVersion": rv}, columns=not self.columns_sent)
        self.columns_sent = True
        return b'{"type":"' + type_.encode() + b'","object":' + t + b"}\n"

    def bookmark(self, rv: int, initial_end: bool = False) -> bytes:
        meta: dict[str, Any] = {"resourceVersion": str(rv), "creationTimestamp": None}
        if initial_end:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        obj = {"kind": self.rt.kind, "apiVersion": self.rt.api_version, "metadata": meta}
        return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


def error_line(err: ApiError) -> bytes:
    return orjson.dumps({"type": "ERROR", "object": err.status()}) + b"\n"


class Watch:
    """One watch request; ``run`` blocks until timeout, server stop or client disconnect."""

    def __init__(
        self,
        store: Store,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        fmt: WatchFormat,
        *,
        resource_version: str | None,
        timeout: float,
        bookmarks: bool,
        bookmark_interval: float,
        send_initial: bool | None = None,
    ) -> None:
        self.store, self.rt, self.namespace = store, rt, namespace
        self.labels, self.fields, self.fmt = labels, fields, fmt
        self.timeout, self.bookmarks, self.bookmark_interval = timeout, bookmarks, bookmark_interval
        self.initial: list[Entry] = []
        self.initial_end_bookmark = False
        self.error: ApiError | None = None
        rv = resource_version or ""
        if send_initial is None:
            send_initial = rv in ("", "0")
        if send_initial:
            with store.lock:
                page = store.page(rt, namespace, labels=labels, fields=fields)
                self.seq = store.hist_base + len(store.history)
            self.initial = page.entries
            self.initial_end_bookmark = bookmarks and resource_version is not None
            self.start_rv = page.rv
        else:
            if not rv.isdigit():
                raise ApiError.bad_request(f'invalid resource version "{rv}"')
            try:
                self.seq = store.watch_start(int(rv))
            except ApiError as exc:
                self.error = exc  # the real server answers 200 and sends an ERROR event
                self.seq = 0
            self.start_rv = int(rv)

    def _matches(self, e: Entry) -> bool:
        if self.namespace is not None and self.rt.namespaced and e.namespace != self.namespace:
            return False
        if self.labels and not self.labels.matches(e.labels):
            return False
        return not (self.fields and not self.fields.matches(lambda f: e.field(self.rt, f)))

    def _translate(self, ev: Event) -> bytes | None:
        if ev.rt is not self.rt:
            return None
        now = self._matches(ev.entry)
        if ev.type != "MODIFIED" or (not self.labels and not self.fields):
            return self.fmt.line(ev.type, ev.entry, ev) if now else None
        was = ev.old is not None and self._matches(ev.old)
        if now:
            return self.fmt.line("MODIFIED" if was else "ADDED", ev.entry, ev)
        return self.fmt.line("DELETED", ev.entry, ev) if was else None

    def run(self, write: Write, alive: Callable[[], bool] = lambda: True,
            silent: Callable[[], bool] = lambda: False) -> None:
        """Stream until timeout, server stop, or ``alive()`` says the client went away.

        Once ``silent()`` is true the watch is dead: it sends nothing more and ignores its timeout.
        """
        if silent():
            return self._dead(alive)
        if self.error is not None:
            write(error_line(self.error))
            return
        buf: list[bytes] = []
        size = 0
        for e in self.initial:
            line = self.fmt.line("ADDED", e)
            buf.append(line)
            size += len(line)
            if size > 256 * 1024:
                write(b"".join(buf))
                buf, size = [], 0
        if self.initial_end_bookmark:
            buf.append(self.fmt.bookmark(self.start_rv, initial_end=True))
        if buf:
            write(b"".join(buf))
        self.initial = []
        deadline = time.monotonic() + self.timeout
        next_bookmark = time.monotonic() + self.bookmark_interval
        seq = self.seq
        while not self.store.closed and alive():
            now = time.monotonic()
            if now >= deadline:
                return
            wait = min(deadline - now, 1.0)
            if self.bookmarks:
                wait = max(0.0, min(wait, next_bookmark - now))
            try:
                evs, seq, cur_rv = self.store.read_events(seq, wait)
            except ApiError as exc:
                write(error_line(exc))
                return
            out: list[bytes] = []
            for ev in evs:
                translated = self._translate(ev)
                if translated is not None:
                    out.append(translated)
            if self.bookmarks and time.monotonic() >= next_bookmark:
                out.append(self.fmt.bookmark(cur_rv))
                next_bookmark = time.monotonic() + self.bookmark_interval
            if silent():  # went silent while waiting: what was read is never sent
                return self._dead(alive)
            if out:
                write(b"".join(out))

    def _dead(self, alive: Callable[[], bool]) -> None:
        """A connection that stays open and delivers nothing, until the client or the server ends it."""
        while not self.store.closed and alive():
            time.sleep(0.2)
