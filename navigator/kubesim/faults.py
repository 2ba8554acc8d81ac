"""Injected failures per resource: error statuses, latency, connections dropped mid-list and silent watches.

Rules are keyed by plural resource name (``"*"`` matches every resource) and may be limited to
some verbs and to a number of occurrences, to test client retries. A silent watch stays open and
delivers nothing (no event, no bookmark), as one a proxy or load balancer lost without closing it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .errors import REASONS, ApiError

MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected by kubesim",
    503: "the server is currently unable to handle the request",
    504: "the server was unable to return a response in the time allotted",
}


@dataclass
class Rule:
    status: int | None = None
    times: int | None = None  # remaining; None = forever
    latency: float = 0.0
    latency_times: int | None = None
    latency_verbs: frozenset[str] | None = None  # None: every verb
    drop: int = 0  # lists to cut short
    verbs: frozenset[str] | None = None
    silent: bool = False  # watches deliver nothing

    def to_json(self, kind: str) -> dict[str, Any]:
        return {"kind": kind, "status": self.status, "times": self.times, "latency": self.latency,
                "latency_times": self.latency_times,
                "latency_verbs": sorted(self.latency_verbs) if self.latency_verbs else None,
                "drop_mid_list": self.drop, "verbs": sorted(self.verbs) if self.verbs else None,
                "silent_watches": self.silent}


@dataclass
class Decision:
    latency: float = 0.0
    error: ApiError | None = None
    drop: bool = False


def fault_error(status: int) -> ApiError:
    headers = {"Retry-After": "1"} if status == 429 else {}
    details = {"retryAfterSeconds": 1} if status in (429, 503, 504) else None
    return ApiError(status, MESSAGES.get(status, f"injected failure {status}"), REASONS.get(status, "Unknown"),
                    details, headers)


class Faults:
    """Switch failures on and off at run time; consulted once per API request."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str, Rule] = {}
        self._silencings: list[str] = []  # kinds, in the order their watches were silenced

    def _rule(self, kind: str) -> Rule:
        return self._rules.setdefault(kind, Rule())

    def set(self, kind: str, status: int, times: int | None = None, verbs: list[str] | None = None) -> None:
        """Fail requests for ``kind`` with ``status`` (429 adds ``Retry-After: 1``)."""
        if not 400 <= int(status) <= 599:
            raise ValueError(f"fault status must be 4xx or 5xx, got {status}")
        with self._lock:
            r = self._rule(kind)
            r.status, r.times = int(status), times
            r.verbs = frozenset(verbs) if verbs else None

    def latency(self, kind: str, seconds: float, times: int | None = None, verbs: list[str] | None = None) -> None:
        """Delay requests for ``kind`` (only ``verbs``, when given) by ``seconds``."""
        with self._lock:
            r = self._rule(kind)
            r.latency, r.latency_times = float(seconds), times
            r.latency_verbs = frozenset(verbs) if verbs else None

    def silence_watches(self, kind: str, on: bool = True) -> None:
        """Watches for ``kind`` go silent: open ones and new ones stay open and send nothing more.

        A watch silenced once stays silent after ``clear`` (a dead connection does not come back);
        it ends only when the client closes it or the server stops. Watches opened later are normal.
        """
        with self._lock:
            self._rule(kind).silent = on
            if on:
                self._silencings.append(kind)

    def watch_epoch(self) -> int:
        """Taken when a watch opens: ``silenced`` compares it with the silencings since."""
        with self._lock:
            return len(self._silencings)

    def silenced(self, kind: str, epoch: int) -> bool:
        """Whether a watch for ``kind`` opened at ``epoch`` is dead: silenced now or any time since it opened."""
        with self._lock:
            if any(k in (kind, "*") for k in self._silencings[epoch:]):
                return True
            return any(r.silent for r in (self._rules.get(kind), self._rules.get("*")) if r is not None)

    def drop_mid_list(self, kind: str, times: int = 1) -> None:
        """Send half of the next ``times`` list bodies for ``kind``, then close the socket."""
        with self._lock:
            self._rule(kind).drop = times

    def clear(self, kind: str | None = None) -> None:
        with self._lock:
            if kind is None:
                self._rules.clear()
            else:
                self._rules.pop(kind, None)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_json(k) for k, r in self._rules.items()]

    def apply(self, spec: dict[str, Any]) -> None:
        """Apply one JSON rule as sent to ``PUT /_kubesim/faults``."""
        kind = str(spec.get("kind") or "*")
        if spec.get("status") is not None:
            self.set(kind, int(spec["status"]), spec.get("times"), spec.get("verbs"))
        if spec.get("latency") is not None:
            self.latency(kind, float(spec["latency"]), spec.get("latency_times"), spec.get("latency_verbs"))
        if spec.get("drop_mid_list"):
            self.drop_mid_list(kind, int(spec["drop_mid_list"]))
        if spec.get("silent_watches") is not None:
            self.silence_watches(kind, bool(spec["silent_watches"]))

    def check(self, kind: str, verb: str) -> Decision:
        d = Decision()
        if not self._rules:
            return d
        with self._lock:
            for key in (kind, "*"):
                r = self._rules.get(key)
                if r is None:
                    continue
                if r.latency and r.latency_times != 0 and (r.latency_verbs is None or verb in r.latency_verbs):
                    d.latency = max(d.latency, r.latency)
                    if r.latency_times is not None:
                        r.latency_times -= 1
                if r.status and r.times != 0 and (r.verbs is None or verb in r.verbs) and d.error is None:
                    d.error = fault_error(r.status)
                    if r.times is not None:
                        r.times -= 1
                if r.drop and verb == "list" and not d.drop:
                    d.drop = True
                    r.drop -= 1
        return d
