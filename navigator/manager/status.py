"""A cluster's status, derived from its edge's own declared interval rather than a fixed timeout."""

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


def cluster_status(
    *,
    connected: bool,
    connected_since: float | None,
    last_sync: float | None,
    sync_interval: float,
    now: float,
    config: StatusSection,
) -> Status:
    """All times are wall-clock seconds (``time.time()``)."""
    if not connected:
        return Status.DISCONNECTED
    if last_sync is None or (connected_since is not None and last_sync < connected_since):
        return Status.INITIALIZING
    if now - last_sync <= stale_after(sync_interval, config):
        return Status.HEALTHY
    return Status.STALE


#: How often a syncing session keeps a copy of its cluster record in the history
#: (``EdgeSession``): a record at most this old still means "syncing" then.
RECORD_EVERY = 60.0


def status_at(*, last_sync: float | None, sync_interval: float, at: float, config: StatusSection) -> Status:
    """The status a cluster had at ``at``, from the copy of its record kept in the history then.

    The same rule as ``cluster_status`` with ``at`` as "now", as if an edge was connected:
    whether one was is not kept, so the past is never DISCONNECTED; a cluster that had
    stopped syncing shows STALE. Copies are kept at most every ``RECORD_EVERY`` seconds,
    so that much more slack is allowed before STALE.
    """
    if last_sync is None:
        return Status.INITIALIZING
    if at - last_sync <= stale_after(sync_interval, config) + RECORD_EVERY:
        return Status.HEALTHY
    return Status.STALE
