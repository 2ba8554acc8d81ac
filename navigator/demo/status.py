"""What the dashboard shows, gathered from the manager's query service and metrics endpoints.

The query service says what the manager knows (status, edge, last sync,
how fresh the copy is, counts, errors). Changes per minute and first-sync progress are not part of
the query API, so they come from scraping the Prometheus endpoints of the
manager and of the edges; without them those columns stay empty.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from navigator.client.client import QueryClient, QueryError

#: Shown for a cluster the demo started but the manager has not heard of yet.
WAITING = "WAITING"


@dataclass(slots=True)
class ClusterStatus:
    cluster: str
    status: str = WAITING
    edge_id: str = ""
    connected: bool = False
    last_sync: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: None until a rate can be told apart from the initial load.
    changes_per_minute: float | None = None
    #: While INITIALIZING: objects the edge collected / the manager received so far.
    progress: int | None = None
    #: The time (edge clock) as of which the manager's copy was exact; ``None`` until a state is applied.
    fresh_as_of: datetime | None = None
    #: Seconds from the edge observing the last applied change to the manager applying it.
    lag: float | None = None


@dataclass(slots=True)
class FleetStatus:
    clusters: list[ClusterStatus]
    taken_at: datetime
    #: Why the manager could not be asked (it is still starting, or it died).
    error: str | None = None
    #: Things the runner noticed, e.g. a child process that exited.
    notices: list[str] = field(default_factory=list)


class RateWindow:
    """Changes per minute from a monotonically growing counter, over a sliding window."""

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self._points: deque[tuple[float, float]] = deque()

    def add(self, at: float, total: float) -> None:
        self._points.append((at, total))
        while len(self._points) > 2 and at - self._points[1][0] >= self.window:
            self._points.popleft()

    def per_minute(self) -> float | None:
        if len(self._points) < 2:
            return None
        (t0, v0), (t1, v1) = self._points[0], self._points[-1]
        if t1 <= t0:
            return None
        return max(0.0, v1 - v0) * 60.0 / (t1 - t0)


def cluster_from_row(row: Mapping[str, Any]) -> ClusterStatus:
    """From a ``navigator query clusters -o json`` row (``QueryClient.clusters``)."""
    last_sync = datetime.fromisoformat(row["last_sync"]) if row.get("last_sync") else None
    fresh_as_of = datetime.fromisoformat(row["fresh_as_of"]) if row.get("fresh_as_of") else None
    errors = [
        f"{e.get('kind')}: {e.get('message')}" + (" (cached)" if e.get("cached") else "")
        for e in row.get("errors") or []
    ]
    return ClusterStatus(
        cluster=row["cluster"],
        status=row.get("status") or "UNKNOWN",
        edge_id=row.get("edge_id") or "",
        connected=bool(row.get("connected")),
        last_sync=last_sync,
        metadata=dict(row.get("metadata") or {}),
        counts={k: int(v) for k, v in (row.get("counts") or {}).items()},
        errors=errors,
        fresh_as_of=fresh_as_of,
        lag=row.get("lag_seconds"),
    )


def scrape(
    url: str, timeout: float = 2.0, client: httpx.Client | None = None
) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Samples of one Prometheus endpoint: name -> sorted label pairs -> value; {} if unreachable."""
    try:
        response = (client.get(url, timeout=timeout) if client is not None else httpx.get(url, timeout=timeout))
        response.raise_for_status()
    except httpx.HTTPError:
        return {}
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def sum_by_cluster(samples: Mapping[tuple[tuple[str, str], ...], float]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for labels, value in samples.items():
        cluster = dict(labels).get("cluster")
        if cluster is not None:
            totals[cluster] = totals.get(cluster, 0.0) + value
    return totals


class StatusPoller:
    """Asks the manager about every cluster; keeps the history rates and progress need."""

    def __init__(
        self,
        manager_address: str,
        *,
        expected: Sequence[str] = (),
        manager_metrics_url: str | None = None,
        edge_metrics_urls: Mapping[str, str] | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.manager_address = manager_address
        self.expected = list(expected)
        self.manager_metrics_url = manager_metrics_url
        self.edge_metrics_urls = dict(edge_metrics_urls or {})
        self.timeout = timeout
        self._client = QueryClient(manager_address, timeout=timeout)
        self._http = httpx.Client()
        self._rates: dict[str, RateWindow] = {}
        #: Clusters seen HEALTHY once: the next reading starts their rate window.
        self._healthy_seen: set[str] = set()
        self._received_base: dict[str, float] = {}
        self._last_status: dict[str, str] = {}
        self._last: list[ClusterStatus] = []
        #: Every cluster that was HEALTHY at least once; the demo's exit code depends on it.
        self.reached_healthy: set[str] = set()

    def close(self) -> None:
        self._client.close()
        self._http.close()

    def poll(self) -> FleetStatus:
        now = datetime.now(UTC)
        try:
            rows = self._client.clusters()
        except QueryError as exc:
            # Keep showing what was known: a restarting manager should not blank the table.
            clusters = self._last or [ClusterStatus(cluster=c) for c in self.expected]
            return FleetStatus(clusters, now, error=str(exc))
        known = {row["cluster"]: cluster_from_row(row) for row in rows}
        clusters = [known.pop(c) if c in known else ClusterStatus(cluster=c) for c in self.expected]
        clusters += [known[c] for c in sorted(known)]
        self._last = clusters
        # Scraped after the query, so a HEALTHY cluster's initial load is already counted.
        self._add_metrics(clusters)
        for c in clusters:
            self._last_status[c.cluster] = c.status
            if c.status == "HEALTHY":
                self.reached_healthy.add(c.cluster)
        return FleetStatus(clusters, now)

    def _add_metrics(self, clusters: list[ClusterStatus]) -> None:
        manager = scrape(self.manager_metrics_url, self.timeout, self._http) if self.manager_metrics_url else {}
        changes = sum_by_cluster(manager.get("navigator_manager_changes_total", {}))
        received = sum_by_cluster(manager.get("navigator_manager_received_objects_total", {}))
        at = time.monotonic()
        for c in clusters:
            if c.status in ("HEALTHY", "STALE"):
                if c.cluster in self._healthy_seen and c.cluster in changes:
                    self._rates.setdefault(c.cluster, RateWindow()).add(at, changes[c.cluster])
                self._healthy_seen.add(c.cluster)
                rate = self._rates.get(c.cluster)
                c.changes_per_minute = rate.per_minute() if rate is not None else None
            elif c.status == "INITIALIZING":
                c.progress = self._progress(c.cluster, received)
            if c.status not in ("INITIALIZING", WAITING):
                self._received_base.pop(c.cluster, None)

    def _progress(self, cluster: str, received: Mapping[str, float]) -> int | None:
        """Objects of the first sync so far: collected by the edge, else received by the manager."""
        if self._last_status.get(cluster) not in (None, WAITING, "INITIALIZING"):
            # (Re)connected after being synced: count only what arrives from now on.
            self._received_base[cluster] = received.get(cluster, 0.0)
        edge_url = self.edge_metrics_urls.get(cluster)
        if edge_url is not None:
            collecting = scrape(edge_url, self.timeout, self._http).get("navigator_edge_collected_objects", {})
            if collecting:
                return int(sum(collecting.values()))
        if cluster not in received:
            return None
        return int(received[cluster] - self._received_base.get(cluster, 0.0))
