"""Injected failures per resource: error statuses, latency and connections dropped mid-list.

Rules are keyed by plural resource name (``"*"`` matches every resource) and may be limited to
some verbs and to a number of occurrences, to test client retries.
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
    drop: int = 0  # lists to cut short
    verbs: frozenset[str] | None = None

    def to_json(self, kind: str) -> dict[str, Any]:
        return {"kind": kind, "status": self.status, "times": self.times, "latency": self.latency,
                "latency_times": self.latency_times, "drop_mid_list": self.drop,
                "verbs": sorted(self.verbs) if self.verbs else None}


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

    def latency(self, kind: str, seconds: float, times: int | None = None) -> None:
        with self._lock:
            r = self._rule(kind)
            r.latency, r.latency_times = float(seconds), times

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
            self.latency(kind, float(spec["latency"]), spec.get("latency_times"))
        if spec.get("drop_mid_list"):
            self.drop_mid_list(kind, int(spec["drop_mid_list"]))

    def check(self, kind: str, verb: str) -> Decision:
        d = Decision()
        if not self._rules:
            return d
        with self._lock:
            for key in (kind, "*"):
                r = self._rules.get(key)
                if r is None:
                    continue
                if r.latency and r.latency_times != 0:
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
