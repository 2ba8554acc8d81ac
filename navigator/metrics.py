"""Prometheus metrics for the edge and the manager, on one registry per process.

The edge and manager code call the small functions below at the points where
something happens; nothing here knows how they work. Keeping Navigator's
metrics on their own ``CollectorRegistry`` (instead of prometheus-client's
global one) means a scrape shows exactly Navigator's figures plus the process
basics, whatever else the process imports. Every name starts with
``navigator_``; ``docs/metrics.md`` lists them all.

A process that runs several edges (the demo, tests) tells them apart by the
``cluster`` label.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from wsgiref.simple_server import WSGIServer

from loguru import logger
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from navigator.config.common import MetricsConfig
from navigator.errors import NavigatorError
from navigator.resource import Change, ChangeType
from navigator.v1 import sync_pb2

#: ``*_created`` series double every counter's lines and tell an operator nothing.
disable_created_metrics()
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(namespace="navigator", registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

#: Syncs of a small cluster take milliseconds, a 150,000-pod cluster tens of seconds.
_SYNC_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 60.0, 120.0, 300.0)
_APPLY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: A watched change reaches the manager in tens of milliseconds; a backlogged edge or manager takes seconds
#: to a minute. Beyond that it is one bucket: the copy-age gauge and STALE say the rest.
_PROPAGATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# -- edge -------------------------------------------------------------------------------------

EDGE_SYNC_DURATION = Histogram(
    "navigator_edge_sync_duration_seconds",
    "Time to collect one cluster state from the Kubernetes API and hand it to the stream.",
    ["cluster", "mode"],
    buckets=_SYNC_BUCKETS,
    registry=REGISTRY,
)
EDGE_OBJECTS = Gauge(
    "navigator_edge_objects",
    "Objects per kind in the edge's latest collection.",
    ["cluster", "kind"],
    registry=REGISTRY,
)
EDGE_COLLECTED = Gauge(
    "navigator_edge_collected_objects",
    "Objects listed so far by the collection in progress, per kind: the progress of a long first sync.",
    ["cluster", "kind"],
    registry=REGISTRY,
)
EDGE_BYTES_SENT = Counter(
    "navigator_edge_sent_bytes",
    "Serialized bytes the edge sent to the manager.",
    ["cluster"],
    registry=REGISTRY,
)
EDGE_BYTES_RECEIVED = Counter(
    "navigator_edge_received_bytes",
    "Serialized bytes the edge received from the manager.",
    ["cluster"],
    registry=REGISTRY,
)
EDGE_ACKS = Counter(
    "navigator_edge_acks",
    "Acknowledgements the edge received, by status (APPLIED, BUFFERED, INVALID, RETRY).",
    ["cluster", "status"],
    registry=REGISTRY,
)
EDGE_RECONNECTS = Counter(
    "navigator_edge_reconnects",
    "Times the edge opened a new stream after losing or being refused one.",
    ["cluster"],
    registry=REGISTRY,
)
EDGE_ERRORS = Counter(
    "navigator_edge_errors",
    "Failures on the edge, by kind: a collector name (pods, ...) for Kubernetes API failures, "
    "or connection, stream, rejected, ack_timeout.",
    ["cluster", "kind"],
    registry=REGISTRY,
)

# -- manager ----------------------------------------------------------------------------------

MANAGER_CONNECTED_EDGES = Gauge(
    "navigator_manager_connected_edges",
    "Edges holding a cluster on this manager right now.",
    registry=REGISTRY,
)
MANAGER_OBJECTS = Gauge(
    "navigator_manager_objects",
    "Stored objects per cluster and kind after the last applied state.",
    ["cluster", "kind"],
    registry=REGISTRY,
)
MANAGER_RECEIVED_OBJECTS = Counter(
    "navigator_manager_received_objects",
    "Resources received in cluster states (chunks included), before they are applied.",
    ["cluster"],
    registry=REGISTRY,
)
MANAGER_CHANGES = Counter(
    "navigator_manager_changes",
    "Changes detected when applying states, by change (added, modified, deleted).",
    ["cluster", "change"],
    registry=REGISTRY,
)
MANAGER_BYTES_RECEIVED = Counter(
    "navigator_manager_received_bytes",
    "Serialized bytes the manager received from edges.",
    ["cluster"],
    registry=REGISTRY,
)
MANAGER_BYTES_SENT = Counter(
    "navigator_manager_sent_bytes",
    "Serialized bytes the manager sent to edges.",
    ["cluster"],
    registry=REGISTRY,
)
MANAGER_ACKS = Counter(
    "navigator_manager_acks",
    "Acknowledgements the manager sent, by status (APPLIED, BUFFERED, INVALID, RETRY).",
    ["cluster", "status"],
    registry=REGISTRY,
)
MANAGER_REJECTIONS = Counter(
    "navigator_manager_rejections",
    "Edges refused at connect, by reason (MALFORMED, UNAUTHENTICATED, ALREADY_HELD, GRACE_PERIOD, ...).",
    ["reason"],
    registry=REGISTRY,
)
MANAGER_ERRORS = Counter(
    "navigator_manager_errors",
    "Failures on the manager, by kind (storage, invalid_state, chunk, sink, stream, ...).",
    ["kind"],
    registry=REGISTRY,
)
MANAGER_STORAGE_APPLY = Histogram(
    "navigator_manager_storage_apply_seconds",
    "Time the storage backend took to apply one state in one transaction, by mode (full, delta).",
    ["mode"],
    buckets=_APPLY_BUCKETS,
    registry=REGISTRY,
)

PROPAGATION = Histogram(
    "navigator_propagation_seconds",
    "Time from the edge observing a change to the manager applying it, per change of a DELTA state "
    "(a FULL's changes are not counted: they all carry the state's time). Edge clock to manager clock.",
    buckets=_PROPAGATION_BUCKETS,
    registry=REGISTRY,
)
PROPAGATION_LAG = Gauge(
    "navigator_propagation_lag_seconds",
    "Per cluster, the propagation lag (observed at the edge -> applied here) of the last applied change.",
    ["cluster"],
    registry=REGISTRY,
)


class CopyAge(Collector):
    """``navigator_copy_age_seconds{cluster}``: now minus the time the stored copy was exact, at scrape time.

    Applies only note the time (a dict write); the age is worked out when scraped, so it keeps
    growing while nothing arrives, which is what an alert wants to see.
    """

    NAME = "navigator_copy_age_seconds"
    HELP = (
        "Per cluster held by this manager, how old its stored copy is: now (manager clock) minus the "
        "edge's timestamp of the last applied state."
    )

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._fresh: dict[str, float] = {}

    def set(self, cluster: str, fresh_as_of: float) -> None:
        self._fresh[cluster] = fresh_as_of

    def forget(self, cluster: str) -> None:
        self._fresh.pop(cluster, None)

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(self.NAME, self.HELP, labels=["cluster"])

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self.NAME, self.HELP, labels=["cluster"])
        now = self.clock()
        for cluster, fresh in sorted(self._fresh.items()):
            family.add_metric([cluster], now - fresh)
        yield family


COPY_AGE = CopyAge()
REGISTRY.register(COPY_AGE)


# -- recording: the edge ------------------------------------------------------------------------


def observe_edge_sync(
    cluster: str, seconds: float, counts: Mapping[str, int] | None, mode: str = "full", failed: Iterable[str] = ()
) -> None:
    """One collection finished: how long it took, what it found per kind, which kinds failed."""
    EDGE_SYNC_DURATION.labels(cluster, mode).observe(seconds)
    for kind, count in (counts or {}).items():
        EDGE_OBJECTS.labels(cluster, kind).set(count)
    for kind in failed:
        EDGE_ERRORS.labels(cluster, kind).inc()


def set_collect_progress(cluster: str, kind: str, listed: int) -> None:
    """Call per list page; a 150,000-pod first sync otherwise looks stuck for a minute."""
    EDGE_COLLECTED.labels(cluster, kind).set(listed)


def count_edge_bytes(cluster: str, sent: int = 0, received: int = 0) -> None:
    if sent:
        EDGE_BYTES_SENT.labels(cluster).inc(sent)
    if received:
        EDGE_BYTES_RECEIVED.labels(cluster).inc(received)


def count_edge_ack(cluster: str, status: str | int) -> None:
    EDGE_ACKS.labels(cluster, _ack_status(status)).inc()


def count_edge_reconnect(cluster: str) -> None:
    EDGE_RECONNECTS.labels(cluster).inc()


def count_edge_error(cluster: str, kind: str) -> None:
    EDGE_ERRORS.labels(cluster, kind).inc()


# -- recording: the manager ---------------------------------------------------------------------


def edge_connected() -> None:
    MANAGER_CONNECTED_EDGES.inc()


def edge_disconnected() -> None:
    MANAGER_CONNECTED_EDGES.dec()


def set_stored_objects(cluster: str, counts: Mapping[str, int]) -> None:
    for kind, count in counts.items():
        MANAGER_OBJECTS.labels(cluster, kind).set(count)


def count_received_objects(cluster: str, count: int) -> None:
    """Resources arrived; during a first, chunked sync this is the only sign of progress."""
    if count:
        MANAGER_RECEIVED_OBJECTS.labels(cluster).inc(count)


def count_manager_bytes(cluster: str, received: int = 0, sent: int = 0) -> None:
    if received:
        MANAGER_BYTES_RECEIVED.labels(cluster).inc(received)
    if sent:
        MANAGER_BYTES_SENT.labels(cluster).inc(sent)


def count_manager_ack(cluster: str, status: str | int, size: int = 0) -> None:
    """An ack was sent; ``size`` its bytes on the wire."""
    MANAGER_ACKS.labels(cluster, _ack_status(status)).inc()
    if size:
        MANAGER_BYTES_SENT.labels(cluster).inc(size)


def count_rejection(reason: str | int) -> None:
    if isinstance(reason, int):
        reason = _enum_name(sync_pb2.RejectReason.Name, reason)
    MANAGER_REJECTIONS.labels(_short(reason, "REJECT_REASON_")).inc()


def count_manager_error(kind: str) -> None:
    MANAGER_ERRORS.labels(kind).inc()


def record_applied(
    cluster: str, full: bool, seconds: float, changes: Sequence[Change], counts: Mapping[str, int] | None = None
) -> None:
    """A state was stored: its apply time, its changes, and the stored objects per kind.

    A full state's ``counts`` are the cluster's new totals for its kinds; after a
    delta the totals move by what was added and deleted.
    """
    MANAGER_STORAGE_APPLY.labels("full" if full else "delta").observe(seconds)
    tally = Tally((c.kind, c.type) for c in changes)
    for change in ChangeType:
        n = sum(v for (_, t), v in tally.items() if t is change)
        if n:
            MANAGER_CHANGES.labels(cluster, change.value.lower()).inc(n)
    if full and counts:
        set_stored_objects(cluster, counts)
    else:
        for (kind, change), n in tally.items():
            if change is ChangeType.ADDED:
                MANAGER_OBJECTS.labels(cluster, kind).inc(n)
            elif change is ChangeType.DELETED:
                MANAGER_OBJECTS.labels(cluster, kind).dec(n)


def record_freshness(
    cluster: str, full: bool, changes: Sequence[Change], fresh_as_of: datetime | None, lag: float | None
) -> None:
    """A state was stored: its changes' propagation times, and the cluster's lag and copy age.

    Only a DELTA's changes go into the histogram, one sample each: a FULL's all carry the
    state's own time (the edge observed them by listing, not as they happened), and a
    150,000-object first sync would otherwise be 150,000 identical samples. A lag below
    zero (an edge clock ahead of the manager's) counts as 0 there; the gauge keeps the sign.
    """
    if not full:
        observe = PROPAGATION.observe
        for change in changes:
            if change.observed_at is not None and change.applied_at is not None:
                observe(max(0.0, (change.applied_at - change.observed_at).total_seconds()))
    if lag is not None:
        PROPAGATION_LAG.labels(cluster).set(lag)
    if fresh_as_of is not None:
        COPY_AGE.set(cluster, fresh_as_of.timestamp())


def forget_freshness(cluster: str) -> None:
    """The cluster's edge left this manager: another manager may serve it now, with its own figures."""
    COPY_AGE.forget(cluster)
    with contextlib.suppress(KeyError):
        PROPAGATION_LAG.remove(cluster)


def _ack_status(status: str | int) -> str:
    if isinstance(status, int):
        status = _enum_name(sync_pb2.AckStatus.Name, status)
    return _short(status, "ACK_STATUS_")


def _enum_name(name_of: Callable[[Any], str], number: int) -> str:
    """A peer may send a number this version does not know: count it, do not fail on it."""
    try:
        return name_of(number)
    except ValueError:
        return str(number)


def _short(value: str, prefix: str) -> str:
    """``ACK_STATUS_APPLIED`` and ``APPLIED`` are the same label value."""
    return value.removeprefix(prefix) or "UNSPECIFIED"


# -- serving ------------------------------------------------------------------------------------


@dataclass
class MetricsServer:
    """The HTTP endpoint serving ``/metrics`` (any path answers) from a daemon thread."""

    host: str
    port: int
    _server: WSGIServer
    _thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def serve_metrics(config: MetricsConfig) -> MetricsServer | None:
    """What the edge and manager commands call: serve if ``metrics.port`` is set."""
    if config.port is None:
        return None
    server = start_metrics_server(config.host, config.port)
    logger.info("serving Prometheus metrics on {}", server.url)
    return server


def start_metrics_server(host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve this process's Navigator metrics; port 0 picks a free port (see ``.port``)."""
    try:
        server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        raise NavigatorError(f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}") from None
    return MetricsServer(host=host, port=int(server.server_port), _server=server, _thread=thread)
