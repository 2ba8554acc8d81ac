"""kubectl's habits in ``navigator query``, as a real process against a real manager: -o wide|yaml|name|jsonpath,
--sort-by, --show-labels, --no-headers, -w, columns and short names a collector declares (a third party's too)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
import yaml
from stevedore import ExtensionManager

from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdge, delta_state, full_state, pod, resource
from navigator.v1 import sync_pb2

#: A third-party collector as its author would ship it: a module and an entry point in navigator.collectors.
WIDGETS_PLUGIN = '''
"""Example.com Widgets: a third party's collector, with its own table columns and short name."""

from navigator.plugin import Collector, Column, Resource, hookimpl


def to_resource(obj):
    raise NotImplementedError("the tests send widgets as an edge would, never through this")


WIDGETS = Collector(
    name="widgets",
    api_version="example.com/v1",
    plural="widgets",
    to_resource=to_resource,
    columns=(
        Column("size", ".size", type="integer"),
        Column("ready", ".ready", type="boolean"),
        Column("owner", ".owner.name"),
        Column("color", ".color", wide=True),
    ),
    short_names=("wd",),
)


@hookimpl
def navigator_collectors():
    return [WIDGETS]
'''

ENTRY_POINTS = """
[navigator.collectors]
widgets = navigator_test_widgets
"""


def install_widgets_plugin(site: Path) -> None:
    """The widgets collector as an installed distribution: a module and its metadata in ``site``."""
    site.mkdir(parents=True, exist_ok=True)
    (site / "navigator_test_widgets.py").write_text(textwrap.dedent(WIDGETS_PLUGIN))
    info = site / "navigator_plugin_test_widgets-0.1.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: navigator-plugin-test-widgets\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)


def widget(name: str, namespace: str, size: int, color: str | None, owner: str | None = None) -> sync_pb2.Resource:
    data = {"size": size, "ready": size > 1, "owner": {"name": owner} if owner else None}
    if color is not None:
        data["color"] = color
    return resource("widgets", name, namespace, labels={"app": "widgets"}, data=data)


def shop_pod(name: str, ip: str, ready: bool, app: str = "web", restarts: int = 0) -> sync_pb2.Resource:
    data = {
        "phase": "Running", "pod_ip": ip, "node_name": "node-1", "ready": ready, "restarts": restarts,
        "start_time": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    return pod(name, "shop", labels={"app": app, "tier": "frontend" if app == "web" else "backend"}, data=data)


def shop_service(name: str, namespace: str = "shop") -> sync_pb2.Resource:
    data = {
        "type": "ClusterIP",
        "cluster_ip": "10.96.0.10",
        "selector": {"app": name},
        "ports": [{"name": "http", "port": 80, "target_port": 8080, "protocol": "TCP"}],
    }
    return resource("services", name, namespace, labels={"app": name}, data=data)


@dataclass
class Shop:
    mgr: TestManager
    #: Where the widgets plugin is installed (on sys.path here; on PYTHONPATH for a manager process).
    site: Path

    @property
    def address(self) -> str:
        return self.mgr.address


@pytest.fixture
async def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Shop]:
    """Clusters east and west: pods and services in ``shop`` and ``kube-system``, widgets of a third-party
    collector (installed with the manager), gadgets of one that is not."""
    site = tmp_path / "site"
    install_widgets_plugin(site)
    monkeypatch.syspath_prepend(str(site))
    # The entry points a process lists are kept for its life: the plugin is installed after this one listed them.
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})
    (tmp_path / "manager").mkdir()
    async with run_test_manager(tmp_path / "manager") as mgr:
        for cluster, east in (("east", True), ("west", False)):
            async with RawEdge(mgr.address) as edge:
                kinds = ["services", "endpointslices", "pods", "widgets", "gadgets"]
                await edge.identify(cluster, f"edge-{cluster}", kinds=kinds)
                objects = {
                    "services": [shop_service("web"), shop_service("db"), shop_service("web", "staging")],
                    "pods": [
                        shop_pod("web-1", "10.0.0.1", True, restarts=3),
                        shop_pod("web-2", "10.0.0.2", east, restarts=1),
                        shop_pod("db-1", "10.0.0.3", True, app="db", restarts=2),
                        pod("coredns", "kube-system"),
                    ],
                    "widgets": [widget("big", "shop", 5, "red", owner="team-a"), widget("tiny", "shop", 1, None)],
                    "gadgets": [resource("gadgets", "g1", "shop", data={"x": 1})],
                }
                state = full_state(cluster, f"edge-{cluster}", 1, objects)
                assert (await edge.send_state(state)).status == sync_pb2.ACK_STATUS_APPLIED
        yield Shop(mgr, site)


COMMAND = [sys.executable, "-m", "navigator.cli.main", "query"]


async def navigator(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``navigator query ARGS`` as a process: exit status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def ok(shop: Shop, *args: str) -> str:
    code, out, err = await navigator(*args, "--manager", shop.address)
    assert code == 0, err
    assert "Traceback" not in err
    return out


def table(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()]


async def test_the_default_table_is_narrow_and_wide_adds_the_wide_columns(shop: Shop) -> None:
    out = await ok(shop, "pods", "-n", "shop")
    rows = table(out)
    assert rows[0] == ["CLUSTER", "NAME", "PHASE", "READY", "AGE"]  # -n: no NAMESPACE column, as kubectl
    assert rows[1][:4] == ["east", "db-1", "Running", "true"] and rows[1][4].endswith("d")
    assert all(len(line) <= 80 and line == line.rstrip() for line in out.splitlines())
    assert out.splitlines()[0] == "CLUSTER  NAME   PHASE    READY  AGE"  # two spaces after the widest value
    wide = table(await ok(shop, "pods", "-o", "wide", "--cluster", "west", "-A"))
    assert wide[0] == ["NAMESPACE", "NAME", "PHASE", "READY", "AGE", "RESTARTS", "IP", "NODE"]
    assert [r[1] for r in wide[1:]] == ["coredns", "db-1", "web-1", "web-2"]
    assert wide[4][-3:] == ["1", "10.0.0.2", "node-1"] and wide[4][3] == "false"
    services = table(await ok(shop, "svc", "web", "-o", "wide"))
    assert services[0] == ["CLUSTER", "NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "PORTS", "EXTERNAL-IP", "SELECTOR"]
    assert services[1] == ["east", "shop", "web", "ClusterIP", "10.96.0.10", "80/TCP→8080", "<none>", "app=web"]


async def test_yaml_is_the_json_rows(shop: Shop) -> None:
    as_json = orjson.loads(await ok(shop, "pods", "-n", "shop", "-o", "json"))
    as_yaml = yaml.safe_load(await ok(shop, "pods", "-n", "shop", "-o", "yaml"))
    assert as_yaml == as_json and len(as_yaml) == 6
    assert yaml.safe_load(await ok(shop, "pods", "-n", "nowhere", "-o", "yaml")) == []


async def test_name_is_cluster_kind_namespace_name(shop: Shop) -> None:
    out = await ok(shop, "po", "-l", "app=web", "-o", "name")
    assert out.splitlines() == ["east/pods/shop/web-1", "east/pods/shop/web-2", "west/pods/shop/web-1", "west/pods/shop/web-2"]
    assert (await ok(shop, "resources", "--kind", "services", "--cluster", "west", "-n", "staging", "-o", "name")) == (
        "west/services/staging/web\n"
    )
    code, out, err = await navigator("pods", "-n", "nowhere", "-o", "name", "--manager", shop.address)
    assert (code, out, err) == (0, "", "No resources found in nowhere namespace.\n")


async def test_jsonpath_templates_as_kubectl_writes_them(shop: Shop) -> None:
    template = '{range .items[*]}{.cluster}/{.name}{"\\t"}{.pod_ip}{"\\n"}{end}'
    out = await ok(shop, "pods", "-l", "app=web", "--cluster", "east", "-o", f"jsonpath={template}")
    assert out == "east/web-1\t10.0.0.1\neast/web-2\t10.0.0.2\n"
    out = await ok(shop, "pods", "-n", "shop", "-o", 'jsonpath={.items[?(@.ready==false)].name}')
    assert out == "web-2"
    assert await ok(shop, "clusters", "-o", "jsonpath={.items[*].cluster}") == "east west"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pods", "-o", "jsonpath={.items["], "error: -o jsonpath: an unclosed { at character 1"),
        (["pods", "-o", "jsonpath={range .items[*]}{.name}"], "error: -o jsonpath: {range ...} without {end}"),
        (["pods", "-o", "jsonpath={.items[?(@.x==]}"], "error: -o jsonpath: cannot parse {.items[?(@.x==]}"),
        (["clusters", "-o", "jsonpath={end}"], "error: -o jsonpath: {end} without {range ...}"),
        (["pods", "--sort-by", ".nope"], "error: --sort-by: no row has the field .nope (the rows' fields: .cluster,"),
        (["pods", "--sort-by", "NOPE"], "error: --sort-by: no column 'NOPE': give a field path such as .name or a"),
        (["pods", "--sort-by", ".a..b"], "error: --sort-by: '.a..b' is not a field path"),
        (["pods", "-o", "table2"], "argument -o/--output: unknown output format 'table2'"),
        (["pdos"], "error: unknown kind 'pdos': the manager's collectors are endpointslices (eps), pods (po),"),
        (["pods", "-w", "--sort-by", ".name"], "error: -w/--watch cannot be used with --sort-by"),
        (["pods", "-w", "-o", "yaml"], "error: -w/--watch prints a table or JSON lines"),
        (["pods", "--manager", "localhost:0"], "the port must be a number from 1 to 65535"),
    ],
)
async def test_bad_formats_fields_and_kinds_are_one_error_line_and_exit_2(
    shop: Shop, args: list[str], message: str
) -> None:
    if "--manager" not in args:
        args = [*args, "--manager", shop.address]
    code, out, err = await navigator(*args)
    assert (code, out) == (2, ""), err
    assert message in err and "Traceback" not in err
    if message.startswith("error:"):
        assert err.count("\n") == 1


async def test_sort_by_a_field_or_a_column(shop: Shop) -> None:
    by_restarts = table(await ok(shop, "pods", "--cluster", "east", "-n", "shop", "--sort-by", ".restarts", "-o", "wide"))
    assert [r[0] for r in by_restarts[1:]] == ["web-2", "db-1", "web-1"]
    by_column = table(await ok(shop, "pods", "--cluster", "east", "-n", "shop", "--sort-by", "restarts"))
    assert [r[0] for r in by_column[1:]] == ["web-2", "db-1", "web-1"]
    by_label = orjson.loads(await ok(shop, "pods", "-n", "shop", "--sort-by", "{.labels.app}", "-o", "json"))
    assert [r["labels"]["app"] for r in by_label] == ["db", "db", "web", "web", "web", "web"]
    # Missing values sort last; a kind row's own fields too.
    widgets = table(await ok(shop, "widgets", "--cluster", "east", "--sort-by", ".color"))
    assert [r[1] for r in widgets[1:]] == ["big", "tiny"]


async def test_show_labels_and_no_headers(shop: Shop) -> None:
    rows = table(await ok(shop, "pods", "--cluster", "east", "-n", "shop", "--show-labels", "--no-headers"))
    assert rows[0][0] == "db-1" and rows[0][-1] == "app=db,tier=backend"
    assert len(rows) == 3
    rows = table(await ok(shop, "resources", "--kind", "gadgets", "--show-labels"))
    assert rows[0] == ["CLUSTER", "NAMESPACE", "NAME", "VERSION", "LABELS"]
    assert rows[1] == ["east", "shop", "g1", "1", "<none>"]


async def test_a_third_party_collector_declares_its_columns_and_short_names(shop: Shop) -> None:
    rows = table(await ok(shop, "wd", "-n", "shop"))
    assert rows == [
        ["CLUSTER", "NAME", "SIZE", "READY", "OWNER"],
        ["east", "big", "5", "true", "team-a"],
        ["east", "tiny", "1", "false", "<none>"],
        ["west", "big", "5", "true", "team-a"],
        ["west", "tiny", "1", "false", "<none>"],
    ]
    assert table(await ok(shop, "widgets", "tiny", "--cluster", "east", "-o", "wide"))[0][-1] == "COLOR"
    # The declared fields are in every row, null where the data lacks them.
    [tiny] = orjson.loads(await ok(shop, "widget", "tiny", "--cluster", "east", "-o", "json"))
    assert (tiny["size"], tiny["color"], tiny["owner"]) == (1, None, None)
    # A kind whose collector is not installed with the manager: the generic table, through `resources`.
    code, _, err = await navigator("gadgets", "--manager", shop.address)
    assert code == 2 and "navigator query resources --kind KIND" in err
    generic = table(await ok(shop, "resources", "--kind", "gadgets"))
    assert generic == [["CLUSTER", "NAMESPACE", "NAME", "VERSION"], ["east", "shop", "g1", "1"], ["west", "shop", "g1", "1"]]


async def test_service_without_a_namespace_looks_in_every_namespace(shop: Shop) -> None:
    views = orjson.loads(await ok(shop, "service", "web", "-o", "json"))
    assert sorted((v["cluster"], v["namespace"]) for v in views) == [
        ("east", "shop"), ("east", "staging"), ("west", "shop"), ("west", "staging")
    ]  # fmt: skip
    out = await ok(shop, "service", "web")
    assert out.splitlines()[0].strip() == "service web" and "NAMESPACE" in out.splitlines()[1]
    assert [v["namespace"] for v in orjson.loads(await ok(shop, "service", "web", "-n", "shop", "-o", "json"))] == [
        "shop", "shop"
    ]  # fmt: skip
    code, _, err = await navigator("service", "nope", "--manager", shop.address)
    assert code == 2 and "service nope was not found in any cluster or namespace" in err


async def test_watch_lists_then_shows_changes_with_the_same_filters(shop: Shop) -> None:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, "pods", "-w", "-n", "shop", "-l", "app=web", "--cluster", "east", "--manager", shop.address,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines = [(await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split() for _ in range(3)]
        assert lines[0][:4] == ["TYPE", "CLUSTER", "NAMESPACE", "NAME"] and lines[0][4:] == ["PHASE", "READY", "AGE"]
        assert [(line[0], line[3]) for line in lines[1:]] == [("ADDED", "web-1"), ("ADDED", "web-2")]
        async with RawEdge(shop.address) as edge:
            await edge.identify("east", "edge-east", kinds=["services", "endpointslices", "pods", "widgets", "gadgets"])
            changed = shop_pod("web-2", "10.0.0.2", False)
            changed.resource_version = "2"
            changed.labels["tier"] = "gold"
            other = shop_pod("db-2", "10.0.0.4", True, app="db")  # not app=web: not shown
            ack = await edge.send_state(delta_state("east", "edge-east", 2, [other, changed]))
            assert ack.status == sync_pb2.ACK_STATUS_APPLIED
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
        assert line[:4] == ["MODIFIED", "east", "shop", "web-2"] and line[5] == "false"
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 30)
    assert proc.returncode == 0


async def test_a_manager_without_a_port_is_port_50051() -> None:
    """gRPC alone would take 443; the edge and the manager default to 50051."""
    code, out, err = await navigator("pods", "--manager", "manager.invalid", "--timeout", "5")
    assert (code, out) == (1, "") and err.startswith("error: cannot reach the manager at manager.invalid:50051")
