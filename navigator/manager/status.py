"""A cluster's status, derived from its edge's own declared interval rather than a fixed timeout, and why.

A connected cluster is STALE, with a reason (``Verdict.reason``, ``ClusterInfo.status_reason``), when:

- the manager cannot store its states (a storage error, kept in memory since storage
  cannot be written; it clears with the next state applied);
- the edge reports errors: it cannot reach its Kubernetes API, or cannot list or watch
  some kinds (the copy of those kinds is as old as their last good collection);
- no state was applied for too long (the edge stopped syncing);
- the copy is older than ``status.max_age`` (states still arrive, but they describe
  the cluster as it was long ago: a slow or backlogged edge, or one that cannot
  vouch for its copy and keeps its timestamp where it last could).

The copy's age is the manager's clock minus ``fresh_as_of``, a time on the edge's
clock: an edge clock behind the manager's makes copies look older by the
difference, one ahead makes them look younger.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from navigator.config.manager import StatusSection
from navigator.interfaces import KindErrorRecord


class Status(StrEnum):
    INITIALIZING = "INITIALIZING"
    HEALTHY = "HEALTHY"
    STALE = "STALE"
    DISCONNECTED = "DISCONNECTED"


@dataclass(frozen=True, slots=True)
class StorageFailure:
    """The manager could not store a state of a cluster: what storage said, since when (``time.time()``)."""

    message: str
    since: float


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    #: Why the status is not HEALTHY ("" when it is).
    reason: str = ""


def stale_after(sync_interval: float, config: StatusSection) -> float:
    """Seconds after the last applied state at which a connected cluster turns STALE."""
    return sync_interval * config.stale_after + config.slack


def max_age(sync_interval: float, config: StatusSection) -> float:
    """The oldest a connected cluster's copy may be (now - fresh_as_of) and still be HEALTHY."""
    return config.max_age if config.max_age is not None else stale_after(sync_interval, config)


def clock(seconds: float | datetime | None) -> str:
    """A time of day as reasons show it: ``18:42:10 UTC`` (with the date when it is not today's)."""
    if seconds is None:
        return "?"
    when = seconds if isinstance(seconds, datetime) else datetime.fromtimestamp(seconds, UTC)
    when = when.astimezone(UTC)
    if when.date() != datetime.now(UTC).date():
        return when.strftime("%Y-%m-%d %H:%M:%S UTC")
    return when.strftime("%H:%M:%S UTC")


def _span(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"


def errors_reason(errors: Sequence[KindErrorRecord], kinds: Iterable[str] = ()) -> str:
    """What the edge reports, kinds with the same message together: "the edge cannot read any kind
    since 18:42:10 UTC: cannot reach the Kubernetes API at ...". ``kinds``: every kind it sends."""
    if not errors:
        return ""
    groups: dict[str, list[KindErrorRecord]] = {}
    for error in errors:
        groups.setdefault(error.message, []).append(error)
    every = set(kinds)
    parts = []
    for message, group in groups.items():
        named = sorted(e.kind for e in group)
        times = [e.since for e in group if e.since is not None]
        since = f" since {clock(min(times))}" if times else ""
        which = "any kind" if every and set(named) >= every else ", ".join(named)
        status = {e.http_status for e in group if e.http_status}
        code = f" (HTTP {min(status)})" if status and f"{min(status)}" not in message else ""
        parts.append(f"the edge cannot read {which}{since}: {message}{code}")
    return "; ".join(parts)


def storage_reason(failure: StorageFailure) -> str:
    return f"storage error since {clock(failure.since)}: {failure.message}"


def cluster_verdict(
    *,
    connected: bool,
    connected_since: float | None,
    last_sync: float | None,
    sync_interval: float,
    now: float,
    config: StatusSection,
    fresh_as_of: float | None = None,
    errors: Sequence[KindErrorRecord] = (),
    kinds: Iterable[str] = (),
    storage: StorageFailure | None = None,
) -> Verdict:
    """All times are wall-clock seconds (``time.time()``); ``fresh_as_of`` is on the edge's clock.

    ``errors`` are what the edge reports now (stored and current), ``kinds`` every kind it sends,
    ``storage`` the manager's own failure to store the cluster's states.
    """
    reasons: list[str] = []
    if storage is not None:
        reasons.append(storage_reason(storage))
    if not connected:
        reasons.insert(0, "no edge connected" + (f"; last state applied {clock(last_sync)}" if last_sync else ""))
        if errors:
            reasons.append(errors_reason(errors, kinds))
        return Verdict(Status.DISCONNECTED, "; ".join(reasons))
    if last_sync is None or (connected_since is not None and last_sync < connected_since):
        if storage is not None:  # not merely waiting: nothing the edge sends can be stored
            return Verdict(Status.STALE, "; ".join(reasons))
        return Verdict(Status.INITIALIZING, "the edge connected; no state applied yet")
    if errors:
        reasons.append(errors_reason(errors, kinds))
    silent = now - last_sync
    if silent > stale_after(sync_interval, config):
        reasons.append(
            f"no state applied for {_span(silent)} (the edge syncs every {sync_interval:g}s; "
            f"STALE after {_span(stale_after(sync_interval, config))})"
        )
    if fresh_as_of is not None and (age := now - fresh_as_of) > max_age(sync_interval, config):
        reasons.append(
            f"the copy is {_span(age)} old (as of {clock(fresh_as_of)}; at most {_span(max_age(sync_interval, config))})"
        )
    if reasons:
        return Verdict(Status.STALE, "; ".join(reasons))
    return Verdict(Status.HEALTHY)


#: How often a syncing session keeps a copy of its cluster record in the history
#: (``EdgeSession``): a record at most this old still means "syncing" then.
RECORD_EVERY = 60.0


def verdict_at(
    *,
    last_sync: float | None,
    sync_interval: float,
    at: float,
    config: StatusSection,
    fresh_as_of: float | None = None,
    errors: Sequence[KindErrorRecord] = (),
) -> Verdict:
    """The status a cluster had at ``at``, from the copy of its record kept in the history then.

    The same rules as ``cluster_verdict`` with ``at`` as "now", as if an edge was connected:
    whether one was is not kept, so the past is never DISCONNECTED; a cluster that had
    stopped syncing shows STALE. Copies are kept at most every ``RECORD_EVERY`` seconds,
    so that much more slack is allowed before STALE. Only the errors the record kept
    count: what an edge reported only in its deltas, and storage errors, are not kept.
    """
    if last_sync is None:
        return Verdict(Status.INITIALIZING, "no state applied yet")
    reasons: list[str] = []
    if errors:
        reasons.append(errors_reason(errors))
    if (silent := at - last_sync) > stale_after(sync_interval, config) + RECORD_EVERY:
        reasons.append(f"no state applied for {_span(silent)} (the edge syncs every {sync_interval:g}s)")
    if fresh_as_of is not None and (age := at - fresh_as_of) > max_age(sync_interval, config) + RECORD_EVERY:
        reasons.append(f"the copy was {_span(age)} old (as of {clock(fresh_as_of)})")
    if reasons:
        return Verdict(Status.STALE, "; ".join(reasons))
    return Verdict(Status.HEALTHY)
