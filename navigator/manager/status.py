"""A cluster's status, derived from its edge's own declared interval rather than a fixed timeout.

Two rules make a connected cluster STALE: no state applied for too long (the edge
stopped syncing), or a copy older than ``status.max_age`` (states still arrive,
but they describe the cluster as it was long ago: a slow or backlogged edge). The
copy's age is the manager's clock minus ``fresh_as_of``, a time on the edge's
clock: an edge clock behind the manager's makes copies look older by the
difference, one ahead makes them look younger.
"""

from __future__ import annotations

from enum import StrEnum

from navigator.config.manager import StatusSection


class Status(StrEnum):
    INITIALIZING = "INITIALIZING"
    HEALTHY = "HEALTHY"
    STALE = "STALE"
    DISCONNECTED = "DISCONNECTED"


def stale_after(sync_interval: float, config: StatusSection) -> float:
    """Seconds after the last applied state at which a connected cluster turns STALE."""
    return sync_interval * config.stale_after + config.slack


def max_age(sync_interval: float, config: StatusSection) -> float:
    """The oldest a connected cluster's copy may be (now - fresh_as_of) and still be HEALTHY."""
    return config.max_age if config.max_age is not None else stale_after(sync_interval, config)


def cluster_status(
    *,
    connected: bool,
    connected_since: float | None,
    last_sync: float | None,
    sync_interval: float,
    now: float,
    config: StatusSection,
    fresh_as_of: float | None = None,
) -> Status:
    """All times are wall-clock seconds (``time.time()``); ``fresh_as_of`` is on the edge's clock."""
    if not connected:
        return Status.DISCONNECTED
    if last_sync is None or (connected_since is not None and last_sync < connected_since):
        return Status.INITIALIZING
    if now - last_sync > stale_after(sync_interval, config):
        return Status.STALE
    if fresh_as_of is not None and now - fresh_as_of > max_age(sync_interval, config):
        return Status.STALE
    return Status.HEALTHY


#: How often a syncing session keeps a copy of its cluster record in the history
#: (``EdgeSession``): a record at most this old still means "syncing" then.
RECORD_EVERY = 60.0


def status_at(
    *,
    last_sync: float | None,
    sync_interval: float,
    at: float,
    config: StatusSection,
    fresh_as_of: float | None = None,
) -> Status:
    """The status a cluster had at ``at``, from the copy of its record kept in the history then.

    The same rules as ``cluster_status`` with ``at`` as "now", as if an edge was connected:
    whether one was is not kept, so the past is never DISCONNECTED; a cluster that had
    stopped syncing shows STALE. Copies are kept at most every ``RECORD_EVERY`` seconds,
    so that much more slack is allowed before STALE.
    """
    if last_sync is None:
        return Status.INITIALIZING
    if at - last_sync > stale_after(sync_interval, config) + RECORD_EVERY:
        return Status.STALE
    if fresh_as_of is not None and at - fresh_as_of > max_age(sync_interval, config) + RECORD_EVERY:
        return Status.STALE
    return Status.HEALTHY
