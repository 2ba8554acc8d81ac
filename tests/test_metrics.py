"""The metrics endpoint an operator scrapes: real HTTP, Prometheus text format."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from navigator import metrics
from navigator.config.common import MetricsConfig
from navigator.errors import NavigatorError
from navigator.resource import Change, ChangeType


@pytest.fixture
def server() -> Iterator[metrics.MetricsServer]:
    running = metrics.start_metrics_server("127.0.0.1", 0)
    try:
        yield running
    finally:
        running.close()


def scrape(server: metrics.MetricsServer) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    response = httpx.get(server.url, timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str, **labels: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def test_every_metric_family_is_served_with_the_navigator_prefix(server: metrics.MetricsServer) -> None:
    text = httpx.get(server.url, timeout=5).text
    families = {f.name for f in text_string_to_metric_families(text)}
    expected = {
        "navigator_edge_sync_duration_seconds",
        "navigator_edge_objects",
        "navigator_edge_collected_objects",
        "navigator_edge_sent_bytes",
        "navigator_edge_received_bytes",
        "navigator_edge_acks",
        "navigator_edge_reconnects",
        "navigator_edge_errors",
        "navigator_manager_connected_edges",
        "navigator_manager_objects",
        "navigator_manager_received_objects",
        "navigator_manager_changes",
        "navigator_manager_received_bytes",
        "navigator_manager_sent_bytes",
        "navigator_manager_acks",
        "navigator_manager_rejections",
        "navigator_manager_errors",
        "navigator_manager_storage_apply_seconds",
        "navigator_propagation_seconds",
        "navigator_propagation_lag_seconds",
        "navigator_copy_age_seconds",
    }
    assert expected <= families
    assert "navigator_process_cpu_seconds" in families
    # Only Navigator's registry: nothing registered on prometheus-client's global one leaks in.
    assert not {f for f in families if f.startswith("python_gc")}


def test_edge_recordings_show_up_in_a_scrape(server: metrics.MetricsServer) -> None:
    before = scrape(server)
    metrics.observe_edge_sync("metrics-test-edge", 0.3, {"pods": 120, "services": 7})
    metrics.count_edge_bytes("metrics-test-edge", sent=1000, received=40)
    metrics.count_edge_ack("metrics-test-edge", "ACK_STATUS_APPLIED")
    metrics.count_edge_ack("metrics-test-edge", "RETRY")
    metrics.count_edge_reconnect("metrics-test-edge")
    metrics.count_edge_error("metrics-test-edge", "pods")
    metrics.set_collect_progress("metrics-test-edge", "pods", 500)
    after = scrape(server)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "navigator_edge_objects", cluster="metrics-test-edge", kind="pods") == 120
    assert value(after, "navigator_edge_objects", cluster="metrics-test-edge", kind="services") == 7
    assert value(after, "navigator_edge_collected_objects", cluster="metrics-test-edge", kind="pods") == 500
    assert grew("navigator_edge_sync_duration_seconds_count", cluster="metrics-test-edge", mode="full") == 1
    assert grew("navigator_edge_sent_bytes_total", cluster="metrics-test-edge") == 1000
    assert grew("navigator_edge_received_bytes_total", cluster="metrics-test-edge") == 40
    # ACK_STATUS_APPLIED and APPLIED are one label value.
    assert grew("navigator_edge_acks_total", cluster="metrics-test-edge", status="APPLIED") == 1
    assert grew("navigator_edge_acks_total", cluster="metrics-test-edge", status="RETRY") == 1
    assert grew("navigator_edge_reconnects_total", cluster="metrics-test-edge") == 1
    assert grew("navigator_edge_errors_total", cluster="metrics-test-edge", kind="pods") == 1


def test_manager_recordings_show_up_in_a_scrape(server: metrics.MetricsServer) -> None:
    before = scrape(server)
    metrics.edge_connected()
    metrics.edge_connected()
    metrics.edge_disconnected()
    metrics.set_stored_objects("metrics-test-mgr", {"pods": 300})
    metrics.count_received_objects("metrics-test-mgr", 300)
    metrics.count_manager_bytes("metrics-test-mgr", received=2048, sent=64)
    metrics.count_manager_ack("metrics-test-mgr", "ACK_STATUS_BUFFERED")
    metrics.count_rejection("REJECT_REASON_ALREADY_HELD")
    metrics.count_manager_error("storage")
    after = scrape(server)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("navigator_manager_connected_edges") == 1
    assert value(after, "navigator_manager_objects", cluster="metrics-test-mgr", kind="pods") == 300
    assert grew("navigator_manager_received_objects_total", cluster="metrics-test-mgr") == 300
    assert grew("navigator_manager_received_bytes_total", cluster="metrics-test-mgr") == 2048
    assert grew("navigator_manager_sent_bytes_total", cluster="metrics-test-mgr") == 64
    assert grew("navigator_manager_acks_total", cluster="metrics-test-mgr", status="BUFFERED") == 1
    assert grew("navigator_manager_rejections_total", reason="ALREADY_HELD") == 1
    assert grew("navigator_manager_errors_total", kind="storage") == 1


def test_a_taken_port_is_a_clear_error(server: metrics.MetricsServer) -> None:
    with pytest.raises(NavigatorError, match=rf"cannot serve metrics on 127\.0\.0\.1:{server.port}"):
        metrics.start_metrics_server("127.0.0.1", server.port)


def test_close_frees_the_port() -> None:
    first = metrics.start_metrics_server("127.0.0.1", 0)
    port = first.port
    first.close()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_stored_objects_follow_full_states_and_deltas(server: metrics.MetricsServer) -> None:
    def change(kind: str, kind_of_change: ChangeType, name: str) -> Change:
        return Change("metrics-test-apply", kind, "default", name, f"uid-{name}", kind_of_change, None, "1")

    metrics.record_applied("metrics-test-apply", True, 0.02, [], {"pods": 10, "services": 2})
    metrics.record_applied(
        "metrics-test-apply",
        False,
        0.001,
        [
            change("pods", ChangeType.ADDED, "a"),
            change("pods", ChangeType.ADDED, "b"),
            change("pods", ChangeType.DELETED, "c"),
            change("services", ChangeType.MODIFIED, "s"),
        ],
    )
    after = scrape(server)
    assert value(after, "navigator_manager_objects", cluster="metrics-test-apply", kind="pods") == 11
    assert value(after, "navigator_manager_objects", cluster="metrics-test-apply", kind="services") == 2
    assert value(after, "navigator_manager_changes_total", cluster="metrics-test-apply", change="added") == 2
    assert value(after, "navigator_manager_changes_total", cluster="metrics-test-apply", change="deleted") == 1
    assert value(after, "navigator_manager_changes_total", cluster="metrics-test-apply", change="modified") == 1
    # A later full state resets the totals to what the edge counted.
    metrics.record_applied("metrics-test-apply", True, 0.02, [], {"pods": 7})
    assert value(scrape(server), "navigator_manager_objects", cluster="metrics-test-apply", kind="pods") == 7


def test_serve_metrics_only_when_a_port_is_configured() -> None:
    assert metrics.serve_metrics(MetricsConfig()) is None
    running = metrics.serve_metrics(MetricsConfig(host="127.0.0.1", port=0))
    assert running is not None
    try:
        assert "navigator_manager_connected_edges" in httpx.get(running.url, timeout=5).text
    finally:
        running.close()


def test_propagation_counts_delta_changes_and_the_gauges_follow_the_cluster(server: metrics.MetricsServer) -> None:
    cluster = "metrics-test-fresh"
    applied = datetime(2020, 1, 1, 12, 0, 1, tzinfo=UTC)

    def change(name: str, observed: datetime | None) -> Change:
        return Change(cluster, "pods", "default", name, f"uid-{name}", ChangeType.ADDED, None, "1",
                      applied_at=applied, observed_at=observed)  # fmt: skip

    before = scrape(server)
    seen = [change("a", applied - timedelta(seconds=0.03)), change("b", applied - timedelta(seconds=20)),
            change("c", applied + timedelta(seconds=2)), change("d", None)]  # fmt: skip
    metrics.record_freshness(cluster, False, seen, applied - timedelta(seconds=0.01), 0.03)
    # A FULL's changes are not samples: they all carry the state's time.
    metrics.record_freshness(cluster, True, [change("e", applied - timedelta(seconds=5))], None, None)
    after = scrape(server)

    def grew(le: str) -> float:
        return value(after, "navigator_propagation_seconds_bucket", le=le) - value(
            before, "navigator_propagation_seconds_bucket", le=le
        )

    # c was observed 2s "after" it was applied (an edge clock ahead): counted as 0.
    assert value(after, "navigator_propagation_seconds_count") - value(before, "navigator_propagation_seconds_count") == 3
    assert (grew("0.01"), grew("0.05"), grew("10.0"), grew("30.0")) == (1, 2, 2, 3)
    assert value(after, "navigator_propagation_seconds_sum") - value(
        before, "navigator_propagation_seconds_sum"
    ) == pytest.approx(20.03)
    assert value(after, "navigator_propagation_lag_seconds", cluster=cluster) == 0.03
    assert value(after, "navigator_copy_age_seconds", cluster=cluster) > 86400  # worked out at scrape time

    metrics.forget_freshness(cluster)
    metrics.forget_freshness(cluster)  # twice: nothing left to forget
    gone = scrape(server)
    assert (("cluster", cluster),) not in gone.get("navigator_copy_age_seconds", {})
    assert (("cluster", cluster),) not in gone.get("navigator_propagation_lag_seconds", {})


def test_copy_age_is_worked_out_when_scraped() -> None:
    ages = metrics.CopyAge(clock=lambda: 1000.0)
    ages.set("east", 990.5)
    ages.set("west", 1001.0)
    [family] = ages.collect()
    assert [(s.labels, s.value) for s in family.samples] == [({"cluster": "east"}, 9.5), ({"cluster": "west"}, -1.0)]
    ages.forget("east")
    [family] = ages.collect()
    assert [s.labels["cluster"] for s in family.samples] == ["west"]
