"""``navigator query ... -o json`` streams: the rows users always got, printed as pages arrive, and clean failures.

Rows are checked against the shape DESIGN.md documents, built here from what the
edge sent (common fields, the kind's fields, then the rest of the data in its
order; ``resources`` rows carry the data whole), key order included.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest

from navigator.client.rows import json_rows
from navigator.interfaces import PeerInfo
from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdge, chunked, full_state, resource
from navigator.v1 import query_pb2, query_pb2_grpc, sync_pb2

COMMAND = [sys.executable, "-m", "navigator.cli.main"]
CEILING = 120.0

COMMON = ("cluster", "namespace", "name", "uid", "resource_version", "labels")
#: The fields DESIGN.md §3 promises per kind view (null when the collector did not set them).
#: The fields the built-in collectors' declared columns show: every row of the kind has them.
DECLARED = {
    "pods": ("phase", "ready", "start_time", "restarts", "pod_ip", "node_name"),
    "services": ("type", "cluster_ip", "ports", "external_ips", "selector"),
    "endpointslices": ("address_type", "endpoints", "ports", "service"),
}


def pod(i: int) -> sync_pb2.Resource:
    data: dict[str, Any] = {
        "phase": "Running" if i % 7 else "Pending",
        "pod_ip": f"10.0.{i // 256}.{i % 256}" if i % 11 else None,
        "pod_ips": [f"10.0.{i // 256}.{i % 256}"],
        "host_ip": "192.168.0.1",
        "node_name": f"node-{i % 5}",
        "ready": i % 3 != 0,
        "owner": {"kind": "ReplicaSet", "name": f"web-{i // 10}"},
        "restarts": i % 4,
        "containers": ["app", "sidecar"],
        "start_time": "2025-01-01T00:00:00Z",
        "cpu": i / 8,  # floats, integral ones included
        "note": "naïve ☃ \"quoted\" \\ tab\t" if i % 13 == 0 else "",
        "big": 2**53 + i,
    }
    if i % 17 == 0:
        del data["ready"]  # a documented field the collector did not set: null, in its place
    if i % 19 == 0:
        data["name"] = "not the pod's name"  # a data key named like a common field: the common field wins
        data["namespace"] = None
    labels = {"app": f"web-{i // 10}", "tier": "web" if i % 2 else "api", "pod-template-hash": "7d9f8c6b5"}
    return resource("pods", f"web-{i:04d}", f"ns-{i % 3}", labels=labels, data=data)


def service(i: int) -> sync_pb2.Resource:
    data = {
        "type": "ClusterIP" if i % 4 else "LoadBalancer",
        "cluster_ip": f"10.96.0.{i}",
        "cluster_ips": [f"10.96.0.{i}"],
        "selector": {"app": f"web-{i}"},
        "ports": [{"name": "http", "port": 80, "target_port": 8080, "protocol": "TCP"}],
        "external_ips": [],
        "load_balancer": [{"ip": "203.0.113.9"}] if i % 4 == 0 else [],
    }
    return resource("services", f"svc-{i:03d}", f"ns-{i % 3}", labels={"app": f"web-{i}"}, data=data)


def endpointslice(i: int) -> sync_pb2.Resource:
    endpoints = [
        {"addresses": [f"10.0.0.{j}"], "ready": j % 2 == 0, "serving": True, "terminating": False,
         "node_name": "node-1", "zone": None, "target_ref": {"kind": "Pod", "name": f"web-{j:04d}"}}
        for j in range(i % 4)
    ]  # fmt: skip
    data = {"service": f"svc-{i:03d}", "address_type": "IPv4", "endpoints": endpoints, "ports": []}
    labels = {"kubernetes.io/service-name": f"svc-{i:03d}"}
    return resource("endpointslices", f"svc-{i:03d}-x{i}", f"ns-{i % 3}", labels=labels, data=data)


def widget(i: int) -> sync_pb2.Resource:
    """A plugin's kind: any JSON object as data."""
    data = {"size": i, "parts": [{"id": j, "weight": j * 0.5} for j in range(3)], "empty": {}, "ok": None}
    return resource("widgets", f"w-{i:03d}", "tools", labels={"plugin": "widgets"}, data=data)


SENT = {
    "pods": [pod(i) for i in range(300)],
    "services": [service(i) for i in range(40)],
    "endpointslices": [endpointslice(i) for i in range(40)],
    "widgets": [widget(i) for i in range(30)],
}


def kind_row(cluster: str, item: sync_pb2.Resource, view: str) -> dict[str, Any]:
    row: dict[str, Any] = {
        "cluster": cluster, "namespace": item.namespace, "name": item.name, "uid": item.uid,
        "resource_version": item.resource_version, "labels": dict(sorted(item.labels.items())),
    }  # fmt: skip
    for key, value in orjson.loads(item.payload).items():
        if key not in COMMON:
            row[key] = value
    for key in DECLARED[view]:
        row.setdefault(key, None)
    return row


def resources_row(cluster: str, item: sync_pb2.Resource) -> dict[str, Any]:
    return {
        "kind": item.kind, "cluster": cluster, "namespace": item.namespace, "name": item.name, "uid": item.uid,
        "resource_version": item.resource_version, "labels": dict(sorted(item.labels.items())),
        "data": orjson.loads(item.payload),
    }  # fmt: skip


def in_order(rows: Iterable[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: tuple(r[k] for k in keys))


def shape(value: Any) -> Any:
    """``value`` with every object turned into its list of (key, value): equality then checks key order too."""
    if isinstance(value, dict):
        return [(k, shape(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [shape(v) for v in value]
    return value


async def run(*args: str) -> tuple[int, bytes, str]:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, "query", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), CEILING)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()


@pytest.fixture
async def stocked(tmp_path: Path) -> AsyncIterator[TestManager]:
    async with run_test_manager(tmp_path) as mgr:
        for cluster in ("east", "west"):
            async with RawEdge(mgr.address) as edge:
                await edge.identify(cluster, f"edge-{cluster}", kinds=list(SENT))
                state = full_state(cluster, f"edge-{cluster}", 1, SENT)
                assert (await edge.send_state(state)).status == sync_pb2.ACK_STATUS_APPLIED
        yield mgr


async def test_json_rows_are_the_documented_rows_in_their_order(stocked: TestManager) -> None:
    clusters = ("east", "west")
    for view in ("pods", "services", "endpointslices"):
        code, out, err = await run(view, "--manager", stocked.address, "-o", "json")
        assert code == 0, err
        rows = orjson.loads(out)
        expected = in_order((kind_row(c, item, view) for c in clusters for item in SENT[view]),
                            "cluster", "namespace", "name")  # fmt: skip
        assert rows == expected, view
        assert shape(rows) == shape(expected), view
        # One array, one row per line.
        lines = out.split(b"\n")
        assert lines[0] == b"[" and lines[-2:] == [b"]", b""] and len(lines) == len(expected) + 3
        assert all(line.endswith(b"},") for line in lines[1:-3]) and lines[-3].endswith(b"}")
    pods = orjson.loads((await run("pods", "--manager", stocked.address, "-o", "json", "-n", "ns-0"))[1])
    first = next(r for r in pods if r["name"] == "web-0000")  # its data names itself otherwise, and has no "ready"
    assert (first["name"], first["namespace"], first["ready"]) == ("web-0000", "ns-0", None)
    assert "ready" in first and list(first)[:6] == list(COMMON)

    code, out, err = await run("resources", "--manager", stocked.address, "-o", "json")
    assert code == 0, err
    rows = orjson.loads(out)
    expected = in_order((resources_row(c, item) for c in clusters for kind in SENT for item in SENT[kind]),
                        "cluster", "kind", "namespace", "name")  # fmt: skip
    assert shape(rows) == shape(expected)
    code, out, err = await run("resources", "--kind", "widgets", "--cluster", "west", "--manager", stocked.address,
                               "-o", "json")  # fmt: skip
    assert code == 0, err
    assert shape(orjson.loads(out)) == shape([resources_row("west", item) for item in SENT["widgets"]])


async def _pages(address: str, labels_as_json: bool, kind: str = "") -> list[query_pb2.ResourceRecord]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = query_pb2_grpc.QueryStub(channel)
        request = query_pb2.ListResourcesRequest(kind=kind, data_as_json=True, labels_as_json=labels_as_json)
        return [record async for page in stub.ListResources(request) for record in page.resources]


async def test_labels_as_json_and_the_label_map_give_the_same_output(
    stocked: TestManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older client (no ``labels_as_json``) still gets the labels in the map; a manager older than the field
    (it ignores the flag, the client falls back to the map) gives the command the same output byte for byte."""
    old, new = await _pages(stocked.address, False), await _pages(stocked.address, True)
    assert len(old) == len(new) == 2 * sum(len(items) for items in SENT.values())
    assert all(r.labels and not r.labels_json for r in old)
    assert all(not r.labels and r.labels_json for r in new)
    assert [dict(sorted(r.labels.items())) for r in old] == [orjson.loads(r.labels_json) for r in new]
    assert [list(orjson.loads(r.labels_json)) for r in new] == [sorted(r.labels) for r in old]
    for view in ("pods", "services", "endpointslices"):
        assert bytes(json_rows(old, view, DECLARED[view])) == bytes(json_rows(new, view, DECLARED[view]))

    outputs = {}
    for view in ("pods", "resources"):
        code, outputs[view], err = await run(view, "--manager", stocked.address, "-o", "json")
        assert code == 0, err
    real = stocked.manager.list_resources

    async def older(
        request: query_pb2.ListResourcesRequest, peer: PeerInfo | None = None
    ) -> AsyncIterator[query_pb2.ResourcePage]:
        assert request.labels_as_json  # the command asks for it
        request.labels_as_json = False  # ... and an older manager does not know the field
        async for page in real(request, peer):
            assert all(r.labels_json == b"" for r in page.resources)
            yield page

    monkeypatch.setattr(stocked.manager, "list_resources", older)
    for view in ("pods", "resources"):
        code, out, err = await run(view, "--manager", stocked.address, "-o", "json")
        assert (code, out) == (0, outputs[view]), err


async def test_an_empty_result_is_an_empty_array(stocked: TestManager) -> None:
    for args in (["pods", "--cluster", "nowhere"], ["resources", "--kind", "gadgets"], ["services", "-l", "app=none"]):
        code, out, err = await run(*args, "--manager", stocked.address, "-o", "json")
        assert (code, out, err) == (0, b"[]\n", "")


async def test_rows_are_printed_while_the_stream_is_still_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first page is on stdout while the manager holds the rest back: output does not wait for the end."""
    async with run_test_manager(tmp_path) as mgr:
        async with RawEdge(mgr.address) as edge:
            await edge.identify("east", "edge-east")
            pods = [pod(i) for i in range(1200)]  # three pages
            ack = await edge.send_state(full_state("east", "edge-east", 1, {"pods": pods}))
            assert ack.status == sync_pb2.ACK_STATUS_APPLIED
        gate = asyncio.Event()
        pages_sent = 0
        real = mgr.manager.list_resources

        async def held(
            request: query_pb2.ListResourcesRequest, peer: PeerInfo | None = None
        ) -> AsyncIterator[query_pb2.ResourcePage]:
            nonlocal pages_sent
            async for page in real(request, peer):
                if pages_sent == 1:
                    await gate.wait()
                pages_sent += 1
                yield page

        monkeypatch.setattr(mgr.manager, "list_resources", held)
        proc = await asyncio.create_subprocess_exec(
            *COMMAND, "query", "pods", "--manager", mgr.address, "-o", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        # "[" and the first page but its last row, whose line ends when the next page is written.
        first = [await asyncio.wait_for(proc.stdout.readline(), CEILING) for _ in range(500)]
        assert first[0] == b"[\n"
        assert [orjson.loads(line.rstrip(b",\n"))["name"] for line in first[1:4]] == ["web-0000", "web-0003",
                                                                                     "web-0006"]  # fmt: skip
        assert not gate.is_set() and pages_sent == 1 and proc.returncode is None
        gate.set()
        rest, err = await asyncio.wait_for(proc.communicate(), CEILING)
        assert proc.returncode == 0, err
        assert len(orjson.loads(b"".join(first) + rest)) == 1200


async def test_a_manager_that_dies_mid_stream_is_one_error_line_and_exit_1(tmp_path: Path) -> None:
    db = tmp_path / "navigator.db"
    config = tmp_path / "manager.yaml"
    config.write_text(f"listen: 127.0.0.1:0\nstorage: {{plugin: sqlite, options: {{path: {db}}}}}\n")
    manager = await asyncio.create_subprocess_exec(
        *COMMAND, "manager", "--config", str(config), "--log-level", "ERROR",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert manager.stdout is not None
        address = (await asyncio.wait_for(manager.stdout.readline(), CEILING)).decode().split()[-1]
        # 40 MB of rows: far more than the pipe, gRPC and socket buffers hold while the reader waits.
        padding = "x" * 20_000
        pods = [resource("pods", f"p-{i:05d}", data={"phase": "Running", "padding": padding}) for i in range(2000)]
        async with RawEdge(address) as edge:
            await edge.identify("east", "edge-east")
            for chunk in chunked(full_state("east", "edge-east", 1, {"pods": pods}), 500):
                await edge.send(sync_pb2.EdgeMessage(state=chunk))
            acks = [await edge.recv(timeout=CEILING) for _ in range(4)]
            assert acks[-1] is not None and acks[-1].ack.status == sync_pb2.ACK_STATUS_APPLIED
        query = await asyncio.create_subprocess_exec(
            *COMMAND, "query", "pods", "--manager", address, "-o", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert query.stdout is not None
        assert await asyncio.wait_for(query.stdout.readline(), CEILING) == b"[\n"
        os.kill(manager.pid, signal.SIGKILL)
        await manager.wait()
        out, err = await asyncio.wait_for(query.communicate(), CEILING)
    finally:
        if manager.returncode is None:
            manager.kill()
            await manager.wait()
    assert query.returncode == 1
    text = err.decode()
    assert "Traceback" not in text and text.count("\n") == 1, text
    assert text.startswith(f"error: the answer from the manager at {address} broke off after "), text
    # What arrived was printed whole, row by row, and the output is not a complete array.
    lines = out.split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 < len(pods)
    assert all(orjson.loads(line.rstrip(b","))["padding"] == padding for line in lines[:-1])
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(b"[\n" + out)


async def test_pages_of_big_objects_stay_under_the_message_limit(tmp_path: Path) -> None:
    """500 objects of 20 KiB are 10 MB: a manager whose messages may be 4 MiB still sends them, in smaller pages,
    as objects, as changes and as a diff."""
    async with run_test_manager(tmp_path, limits={"max_message_size": 4 * 1024 * 1024}) as mgr:
        padding = "y" * 20_000
        pods = [resource("pods", f"p-{i:04d}", data={"phase": "Running", "padding": padding}) for i in range(500)]
        async with RawEdge(mgr.address) as edge:
            await edge.identify("east", "edge-east")
            for chunk in chunked(full_state("east", "edge-east", 1, {"pods": pods}), 100):
                await edge.send(sync_pb2.EdgeMessage(state=chunk))
            acks = [await edge.recv(timeout=CEILING) for _ in range(5)]
            assert acks[-1] is not None and acks[-1].ack.status == sync_pb2.ACK_STATUS_APPLIED
        code, out, err = await run("pods", "--manager", mgr.address, "-o", "json")
        assert code == 0, err
        rows = orjson.loads(out)
        assert len(rows) == 500 and all(r["padding"] == padding for r in rows)
        # The history's pages too: every change carries its object.
        code, out, err = await run("changes", "--manager", mgr.address, "-o", "json")
        assert code == 0, err
        assert len(orjson.loads(out)) == 500
        code, out, err = await run("diff", "--from", "1h", "--manager", mgr.address, "-o", "json")
        assert code == 0, err
        assert len(orjson.loads(out)) == 500
