"""``navigator query`` as a real process against a real manager: filters, JSON shapes, tables, the joined view."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from navigator.client.times import rfc3339
from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdge, delta_state, endpointslice, full_state, pod, service
from navigator.v1 import sync_pb2

COMMAND = [sys.executable, "-m", "navigator.cli.main", "query"]


def shop_pod(name: str, ip: str, ready: bool, app: str = "web") -> sync_pb2.Resource:
    data = {"phase": "Running", "pod_ip": ip, "node_name": "node-1", "ready": ready, "restarts": 0}
    return pod(name, "shop", labels={"app": app, "tier": "frontend" if app == "web" else "backend"}, data=data)


@pytest.fixture
async def populated(tmp_path: Path) -> AsyncIterator[TestManager]:
    async with run_test_manager(tmp_path) as mgr:
        for cluster, web_ready in (("east", True), ("west", False)):
            async with RawEdge(mgr.address) as edge:
                await edge.identify(cluster, f"edge-{cluster}", metadata={"region": cluster})
                state = full_state(
                    cluster,
                    f"edge-{cluster}",
                    1,
                    {
                        "services": [service("web"), service("db")],
                        "endpointslices": [
                            endpointslice("web", [("web-1", "10.0.0.1", True), ("web-2", "10.0.0.2", web_ready)])
                        ],
                        "pods": [
                            shop_pod("web-1", "10.0.0.1", True),
                            shop_pod("web-2", "10.0.0.2", web_ready),
                            shop_pod("db-1", "10.0.0.3", True, app="db"),
                            pod("coredns", "kube-system"),
                        ],
                    },
                )
                assert (await edge.send_state(state)).status == sync_pb2.ACK_STATUS_APPLIED
        yield mgr


async def navigator(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def as_json(mgr: TestManager, *args: str) -> list[dict[str, Any]]:
    code, out, err = await navigator(*args, "--manager", mgr.address, "-o", "json")
    assert code == 0, err
    rows: list[dict[str, Any]] = orjson.loads(out)
    return rows


async def test_clusters_json(populated: TestManager) -> None:
    rows = await as_json(populated, "clusters")
    assert [r["cluster"] for r in rows] == ["east", "west"]
    east = rows[0]
    assert set(east) >= {"cluster", "edge_id", "status", "connected", "last_sync", "metadata", "counts", "errors"}
    assert east["edge_id"] == "edge-east" and east["status"] == "DISCONNECTED" and east["connected"] is False
    assert east["counts"] == {"endpointslices": 1, "pods": 4, "services": 2}
    assert east["metadata"] == {"region": "east"} and east["errors"] == []
    assert east["last_sync"].endswith("Z")


async def test_pods_filters_and_shape(populated: TestManager) -> None:
    rows = await as_json(populated, "pods", "-n", "shop", "-l", "app=web,tier!=db", "--cluster", "west")
    assert [(r["cluster"], r["name"]) for r in rows] == [("west", "web-1"), ("west", "web-2")]
    web2 = rows[1]
    for key in ("cluster", "namespace", "name", "uid", "resource_version", "labels", "phase", "pod_ip", "node_name"):
        assert key in web2
    assert (web2["ready"], web2["pod_ip"], web2["labels"]["app"]) == (False, "10.0.0.2", "web")
    assert len(await as_json(populated, "pods")) == 8
    assert [r["name"] for r in await as_json(populated, "pods", "-l", "app in (db)")] == ["db-1", "db-1"]
    assert await as_json(populated, "pods", "-l", "!app", "-n", "shop") == []


async def test_services_and_endpointslices_shape(populated: TestManager) -> None:
    [svc] = await as_json(populated, "services", "--cluster", "east", "--name", "web")
    assert (svc["type"], svc["cluster_ip"], svc["selector"]) == ("ClusterIP", "10.96.0.10", {"app": "web"})
    assert svc["ports"] == [{"name": "http", "port": 80, "target_port": 8080, "protocol": "TCP"}]
    [eps] = await as_json(populated, "endpointslices", "--cluster", "west")
    assert (eps["service"], eps["address_type"]) == ("web", "IPv4")
    assert set(eps["endpoints"][0]) == {"addresses", "ready", "serving", "terminating", "node_name", "zone", "target_ref"}
    assert eps["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]


async def test_resources_any_kind(populated: TestManager) -> None:
    rows = await as_json(populated, "resources", "--kind", "pods", "-n", "kube-system")
    assert [(r["cluster"], r["kind"], r["name"]) for r in rows] == [("east", "pods", "coredns"), ("west", "pods", "coredns")]
    assert rows[0]["data"]["phase"] == "Running" and rows[0]["labels"] == {}
    assert len(await as_json(populated, "resources")) == 2 * 7


async def test_joined_service_view(populated: TestManager) -> None:
    views = await as_json(populated, "service", "web", "-n", "shop")
    assert [v["cluster"] for v in views] == ["east", "west"]
    east, west = views
    assert (east["cluster_ip"], east["ready_endpoints"], west["ready_endpoints"]) == ("10.96.0.10", 2, 1)
    assert [(e["pod"], e["ready"], e["pod_ready"]) for e in west["endpoints"]] == [
        ("web-1", True, True),
        ("web-2", False, False),
    ]
    code, out, err = await navigator("service", "web", "-n", "shop", "--manager", populated.address)
    assert code == 0, err
    assert "web-2" in out and "10.96.0.10" in out
    code, _, err = await navigator("service", "nope", "-n", "shop", "--manager", populated.address)
    assert code == 2 and "shop/nope was not found" in err


async def test_tables(populated: TestManager) -> None:
    for view, expected in (("clusters", "DISCONNECTED"), ("pods", "web-2"), ("services", "80/TCP→8080"),
                           ("endpointslices", "1/2"), ("resources", "coredns")):  # fmt: skip
        code, out, err = await navigator(view, "--manager", populated.address)
        assert code == 0, err
        assert expected in out, out


async def test_manager_address_from_the_environment(populated: TestManager) -> None:
    code, out, _ = await navigator("clusters", "-o", "json", env={"NAVIGATOR_MANAGER": populated.address})
    assert code == 0 and len(orjson.loads(out)) == 2


async def test_unreachable_manager_is_one_line_and_exit_1() -> None:
    code, out, err = await navigator("pods", "--manager", "127.0.0.1:1", "--timeout", "5")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: cannot reach the manager at 127.0.0.1:1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--limit", "-1"], "argument --limit: expected at least 1, got -1"),  # was a traceback
        (["--limit", "0"], "argument --limit: expected at least 1, got 0"),  # silently meant no limit
        (["--timeout", "-1"], "argument --timeout: invalid duration '-1'"),  # was accepted
        (["--timeout", "0"], "argument --timeout: expected a positive duration"),
    ],
)
async def test_bad_limits_and_timeouts_are_usage_errors(args: list[str], message: str) -> None:
    for command in (["pods"], ["changes"], ["clusters"]):
        if "--limit" in args and command == ["clusters"]:
            continue
        code, out, err = await navigator(*command, *args, "--manager", "127.0.0.1:1")
        assert (code, out) == (2, ""), err
        assert message in err and "Traceback" not in err


async def test_a_timeout_takes_a_duration(populated: TestManager) -> None:
    code, out, _ = await navigator("clusters", "-o", "json", "--timeout", "1m", "--manager", populated.address)
    assert code == 0 and len(orjson.loads(out)) == 2


async def test_a_bad_selector_is_a_clear_error(populated: TestManager) -> None:
    code, _, err = await navigator("pods", "-l", "app in (web", "--manager", populated.address)
    assert code == 2 and "label selector" in err and "Traceback" not in err


# -- history: changes, --at, diff ----------------------------------------------------------


@dataclass
class Timeline:
    mgr: TestManager
    #: After web-1 and web-2 were added (tier=frontend).
    before: str
    #: After web-1 was relabelled tier=gold and web-2 deleted.
    after: str


async def _moment() -> str:
    await asyncio.sleep(0.02)
    when = rfc3339(datetime.now(UTC))
    await asyncio.sleep(0.02)
    return when


@pytest.fixture
async def timeline(tmp_path: Path) -> AsyncIterator[Timeline]:
    async with run_test_manager(tmp_path) as mgr, RawEdge(mgr.address) as edge:
        await edge.identify("east", "edge-east")
        pods = [shop_pod("web-1", "10.0.0.1", True), shop_pod("web-2", "10.0.0.2", True)]
        await edge.send_state(full_state("east", "edge-east", 1, {"pods": pods, "services": [service("web")]}))
        before = await _moment()
        relabelled = shop_pod("web-1", "10.0.0.1", True)
        relabelled.resource_version = "2"
        relabelled.labels["tier"] = "gold"
        gone = sync_pb2.ResourceKey(kind="pods", namespace="shop", name="web-2")
        await edge.send_state(delta_state("east", "edge-east", 2, [relabelled], [gone]))
        yield Timeline(mgr, before, await _moment())


async def test_changes_json_newest_first_with_fields(timeline: Timeline) -> None:
    rows = await as_json(timeline.mgr, "changes", "--kind", "pods")
    assert [(r["type"], r["name"]) for r in rows[2:]] in (
        [("ADDED", "web-2"), ("ADDED", "web-1")], [("ADDED", "web-1"), ("ADDED", "web-2")]
    )  # fmt: skip
    assert {(r["type"], r["name"]) for r in rows[:2]} == {("MODIFIED", "web-1"), ("DELETED", "web-2")}
    [modified] = [r for r in rows if r["type"] == "MODIFIED"]
    for key in ("type", "cluster", "kind", "namespace", "name", "uid", "resource_version", "applied_at",
                "observed_at", "changed_fields", "labels", "data"):  # fmt: skip
        assert key in modified, key
    assert (modified["cluster"], modified["resource_version"], modified["changed_fields"]) == ("east", "2", ["labels"])
    assert modified["labels"]["tier"] == "gold" and modified["data"]["pod_ip"] == "10.0.0.1"
    assert modified["applied_at"].endswith("Z") and timeline.before < modified["applied_at"] < timeline.after


async def test_changes_filters(timeline: Timeline) -> None:
    mgr = timeline.mgr
    since = ("--since", timeline.before)
    assert [r["type"] for r in await as_json(mgr, "changes", *since, "--name", "web-2")] == ["DELETED"]
    assert [r["name"] for r in await as_json(mgr, "changes", "-l", "tier=gold")] == ["web-1"]
    assert [r["kind"] for r in await as_json(mgr, "changes", "--kind", "services", "-n", "shop")] == ["services"]
    assert len(await as_json(mgr, "changes", "--until", timeline.before)) == 3
    assert len(await as_json(mgr, "changes", "--since", "1h", "--cluster", "east")) == 5
    assert await as_json(mgr, "changes", "--cluster", "west") == []
    assert len(await as_json(mgr, "changes", "--limit", "1")) == 1


async def test_changes_table(timeline: Timeline) -> None:
    code, out, err = await navigator("changes", "--manager", timeline.mgr.address, "--since", timeline.before)
    assert code == 0, err
    header, *lines = out.splitlines()
    assert header.split() == ["TIME", "TYPE", "CLUSTER", "KIND", "NAMESPACE", "NAME", "RV", "FIELDS"]
    modified = next(line.split() for line in lines if "MODIFIED" in line)
    assert modified[1:] == ["MODIFIED", "east", "pods", "shop", "web-1", "2", "labels"]
    assert modified[0].endswith("Z") and len(modified[0]) == len("2026-12-03T08:00:00Z")


async def test_at_shows_what_was_there_then(timeline: Timeline) -> None:
    mgr = timeline.mgr
    then = await as_json(mgr, "pods", "-n", "shop", "--at", timeline.before)
    assert [(r["name"], r["labels"]["tier"]) for r in then] == [("web-1", "frontend"), ("web-2", "frontend")]
    assert then[1]["phase"] == "Running"  # the kind view's fields, as now
    assert [r["name"] for r in await as_json(mgr, "pods", "-n", "shop")] == ["web-1"]
    assert [r["name"] for r in await as_json(mgr, "pods", "-l", "tier=gold", "--at", timeline.before)] == []
    # "1s" means a second ago: only once a second has passed since the delta is that after it.
    await asyncio.sleep(max(0.0, 1.2 - (datetime.now(UTC) - datetime.fromisoformat(timeline.after)).total_seconds()))
    assert len(await as_json(mgr, "resources", "--kind", "pods", "--at", "1s")) == 1
    [east] = await as_json(mgr, "clusters", "--at", timeline.before)
    assert (east["counts"], east["status"], east["connected"]) == ({"pods": 2, "services": 1}, "HEALTHY", False)
    code, out, err = await navigator("pods", "--manager", mgr.address, "--at", timeline.before)
    assert code == 0, err
    assert out.splitlines()[0].strip() == f"as of {timeline.before}" and "web-2" in out
    code, out, err = await navigator("clusters", "--manager", mgr.address, "--at", timeline.before)
    assert code == 0 and "HEALTHY" in out and "as of" in out, err


async def test_diff(timeline: Timeline) -> None:
    mgr = timeline.mgr
    rows = await as_json(mgr, "diff", "--from", timeline.before, "--to", timeline.after)
    assert [(r["type"], r["name"], r["changed_fields"]) for r in rows] == [
        ("CHANGED", "web-1", ["labels"]),
        ("REMOVED", "web-2", []),
    ]
    assert (rows[0]["old_resource_version"], rows[0]["resource_version"]) == ("1", "2")
    assert await as_json(mgr, "diff", "--from", timeline.after) == []
    assert await as_json(mgr, "diff", "--from", timeline.before, "--kind", "services") == []
    assert len(await as_json(mgr, "diff", "--from", "1h", "--cluster", "east", "-n", "shop")) == 2  # added since
    code, out, err = await navigator("diff", "--manager", mgr.address, "--from", timeline.before)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].strip() == f"from {timeline.before} to now"
    assert lines[1].split() == ["TYPE", "CLUSTER", "KIND", "NAMESPACE", "NAME", "RV", "FIELDS"]
    assert lines[2].split() == ["CHANGED", "east", "pods", "shop", "web-1", "1→2", "labels"]
    assert lines[3].split() == ["REMOVED", "east", "pods", "shop", "web-2", "1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["changes", "--since", "yesterday"], "error: --since: invalid time 'yesterday': use RFC 3339"),
        (["changes", "--since", "2026-01-01T00:00:00"], "has no time zone: add Z"),
        (["changes", "--since", "10m", "--until", "1h"], "error: --since 20"),
        (["changes", "--until", "2999-01-01T00:00:00Z"], "error: --until: 2999-01-01T00:00:00Z is in the future"),
        (["changes", "-l", "a in (b"], "error: -l: cannot parse"),
        (["pods", "--at", "soon"], "error: --at: invalid time 'soon'"),
        (["clusters", "--at", "2999-01-01T00:00:00Z"], "is in the future"),
        (["diff"], "error: --from is required"),
        (["diff", "--from", "1m", "--to", "1h"], "is after --to"),
        (["pods", "--at", "30d"], "error: invalid query: at 20"),
        (["diff", "--from", "30d"], "is older than the history retention (7d)"),
    ],
)
async def test_bad_history_arguments_are_one_line_and_exit_2(
    populated: TestManager, args: list[str], message: str
) -> None:
    code, out, err = await navigator(*args, "--manager", populated.address)
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


async def test_history_off_is_exit_1_saying_so(tmp_path: Path) -> None:
    async with run_test_manager(tmp_path, history={"retention": "off"}) as mgr:
        for args in (["changes"], ["diff", "--from", "1m"], ["pods", "--at", "1m"], ["clusters", "--at", "1m"]):
            code, out, err = await navigator(*args, "--manager", mgr.address)
            assert (code, out) == (1, ""), err
            assert err == (
                f"error: the manager at {mgr.address} cannot answer: history is off "
                "(history.retention: off in the manager config)\n"
            )


async def test_kubectl_habits_short_names_a_positional_name_and_all_namespaces(populated: TestManager) -> None:
    address = ("--manager", populated.address)
    code, out, _ = await navigator("po", "web-1", "-n", "shop", "-o", "json", *address)
    assert code == 0 and sorted((r["cluster"], r["name"]) for r in orjson.loads(out)) == [
        ("east", "web-1"), ("west", "web-1")
    ]  # fmt: skip
    for short, full in (("po", "pods"), ("svc", "services"), ("eps", "endpointslices")):
        assert await navigator(short, "-A", "-o", "json", *address) == await navigator(full, "-o", "json", *address)
    code, out, err = await navigator("pods", "-A", "-n", "shop", *address)
    assert code == 2 and "not allowed with argument" in err and out == ""
    code, out, err = await navigator("pods", "web-1", "--name", "db-1", *address)
    assert code == 2 and "NAME 'web-1' and --name 'db-1' differ" in err


async def test_an_empty_table_says_no_resources_found_on_stderr(populated: TestManager) -> None:
    code, out, err = await navigator("pods", "-n", "nowhere", "--manager", populated.address)
    assert (code, out, err) == (0, "", "No resources found in nowhere namespace.\n")
    code, out, err = await navigator("svc", "nothing-by-this-name", "--manager", populated.address)
    assert (code, out, err) == (0, "", "No resources found.\n")
    code, out, _ = await navigator("pods", "-n", "nowhere", "-o", "json", "--manager", populated.address)
    assert (code, out) == (0, "[]\n")
