"""What the dashboard tells a user, rendered from plain readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rich.console import Console

from navigator.demo.clusters import fleet
from navigator.demo.dashboard import DashboardInfo, age, kind_titles, render, status_lines
from navigator.demo.status import ClusterStatus, FleetStatus, RateWindow, cluster_from_row
from navigator.protocol import check_cluster_id

NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def reading() -> FleetStatus:
    return FleetStatus(
        [
            ClusterStatus(
                "production-east", "HEALTHY", "edge-a", True, NOW - timedelta(seconds=3),
                {"region": "us-east-1"}, {"pods": 2000, "services": 100, "endpointslices": 101}, [], 42.0,
                fresh_as_of=NOW - timedelta(seconds=0.2), lag=0.045,
            ),
            ClusterStatus("staging-west", "INITIALIZING", "edge-b", True, progress=1500),
            ClusterStatus(
                "development-central", "DISCONNECTED", "edge-c", False, NOW - timedelta(minutes=5),
                counts={"pods": 5}, errors=["pods: HTTP 500 boom"],
            ),
            ClusterStatus("production-north"),
        ],
        NOW,
    )


def text_of(renderable: object, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def test_live_view_shows_status_counts_rates_errors_and_commands() -> None:
    info = DashboardInfo(
        "Navigator demo", "127.0.0.1:50051", ["logs: /tmp/x"],
        ["navigator query pods --manager 127.0.0.1:50051"],
    )
    text = text_of(render(info, reading(), 12))
    assert "manager 127.0.0.1:50051" in text
    assert "1/4 clusters HEALTHY" in text
    assert "navigator query pods --manager 127.0.0.1:50051" in text
    row = next(line for line in text.splitlines() if "production-east" in line)
    for cell in ("HEALTHY", "edge-a", "3s ago", "0.2s", "2,000", "100", "101", "42"):
        assert cell in row
    assert "INITIALIZING 1,500" in text
    assert "development-central: pods: HTTP 500 boom" in text
    assert "WAITING" in text


def test_status_lines_for_pipes_say_the_same_in_one_line_per_cluster() -> None:
    lines = status_lines(reading())
    assert len(lines) == 4
    assert lines[0] == (
        "12:00:00 production-east HEALTHY edge=edge-a last_sync=3s_ago freshness=0.2s lag=45ms "
        "endpointslices=101 pods=2000 services=100 changes/min=42 errors=0"
    )
    assert "INITIALIZING progress=1500" in lines[1]
    assert "last_sync=5m00s_ago" in lines[2] and "errors=1" in lines[2]
    assert "production-north WAITING" in lines[3] and "freshness=- lag=-" in lines[3]


def test_manager_trouble_and_notices_are_shown() -> None:
    fleet_status = reading()
    fleet_status.error = "manager 127.0.0.1:1: connection refused"
    fleet_status.notices = ["edge production-east (pid 7) exited with code 1"]
    lines = status_lines(fleet_status)
    assert "connection refused" in lines[0] and "exited with code 1" in lines[1]
    text = text_of(render(DashboardInfo("t", "127.0.0.1:1"), fleet_status, 1))
    assert "connection refused" in text and "exited with code 1" in text


def test_ages_read_naturally() -> None:
    assert age(None, NOW) == "never"
    assert age(NOW - timedelta(seconds=59), NOW) == "59s ago"
    assert age(NOW - timedelta(seconds=61), NOW) == "1m01s ago"
    assert age(NOW - timedelta(hours=2, minutes=3), NOW) == "2h03m ago"


def test_changes_per_minute_over_a_sliding_window() -> None:
    window = RateWindow(window=60.0)
    assert window.per_minute() is None
    window.add(0.0, 100.0)
    assert window.per_minute() is None
    window.add(30.0, 130.0)
    assert window.per_minute() == 60.0
    for t in range(31, 200):
        window.add(float(t), 130.0)
    assert window.per_minute() == 0.0


def test_the_simulated_fleet_has_distinct_valid_names_with_metadata() -> None:
    clusters = fleet(25)
    assert [c.id for c in clusters[:3]] == ["production-east", "staging-west", "development-central"]
    assert len({c.id for c in clusters}) == 25
    for c in clusters:
        check_cluster_id(c.id)
        assert c.metadata["environment"] in c.id and c.metadata["region"]
    assert len({c.seed for c in clusters}) == 25


def test_a_query_row_gives_the_copys_freshness() -> None:
    row = {"cluster": "east", "status": "HEALTHY", "fresh_as_of": "2025-01-01T11:59:57.5Z", "lag_seconds": 0.25}
    status = cluster_from_row(row)
    assert (status.fresh_as_of, status.lag) == (NOW - timedelta(seconds=2.5), 0.25)
    assert (cluster_from_row({"cluster": "west"}).fresh_as_of, cluster_from_row({"cluster": "west"}).lag) == (None, None)


def test_count_columns_follow_the_kinds_the_manager_describes() -> None:
    """No kind is special: counts in the order `query clusters` shows them, long names by a short name."""
    described = [
        {"kind": "endpointslices", "short_names": ["eps"]},
        {"kind": "pods", "short_names": ["po"]},
        {"kind": "widgetgroups", "short_names": []},
    ]
    titles = kind_titles(described)
    assert titles == {"endpointslices": "EPS"}
    text = text_of(render(DashboardInfo("t", "127.0.0.1:1", kind_titles=titles), reading(), 1))
    header = next(line for line in text.splitlines() if "CLUSTER" in line)
    assert header.split()[-5:] == ["EPS", "PODS", "SERVICES", "CHANGES/MIN", "ERRORS"]
    plain = text_of(render(DashboardInfo("t", "127.0.0.1:1"), reading(), 1))
    assert "ENDPOINTSLICES" in plain
