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
