"""The HTTP API against a real manager: every endpoint, the filters, paging and the JSON shapes of
``navigator query -o json``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest

from navigator.client.times import rfc3339
from navigator.testing.raw_edge import delta_state
from navigator.v1 import sync_pb2
from navigator.web import queries

from .conftest import Served, shop_pod


async def get(http: httpx.AsyncClient, path: str, status: int = 200, /, **params: Any) -> Any:
    response = await http.get(path, params=params)
    assert response.status_code == status, response.text
    return response.json()


async def test_probes_and_openapi(http: httpx.AsyncClient) -> None:
    assert await get(http, "/healthz") == {"status": "ok"}
    assert await get(http, "/readyz") == {"status": "ready"}
    document = await get(http, "/openapi.json")
    for path in ("/api/v1/clusters", "/api/v1/resources", "/api/v1/pods", "/api/v1/services/{namespace}/{name}",
                 "/api/v1/changes", "/api/v1/diff", "/api/v1/events"):  # fmt: skip
        assert path in document["paths"]
    page = await http.get("/")
    assert page.status_code == 200 and "<script" in page.text and "//cdn" not in page.text


async def test_clusters(http: httpx.AsyncClient, served: Served) -> None:
    rows = (await get(http, "/api/v1/clusters"))["items"]
    assert [r["cluster"] for r in rows] == ["east", "west"]
    assert rows == [{**r, "age_seconds": row["age_seconds"]} for r, row in zip(await served.mgr.clusters(), rows, strict=True)]
    east = rows[0]
    assert east["counts"] == {"endpointslices": 1, "pods": 4, "services": 2}
    assert east["connected"] is True and east["metadata"] == {"region": "east"} and east["errors"] == []
    assert isinstance(east["age_seconds"], float)
    [west] = (await get(http, "/api/v1/clusters", cluster="west"))["items"]
    assert west["cluster"] == "west"


async def test_kind_views_match_query_json(http: httpx.AsyncClient, served: Served) -> None:
    for view in ("pods", "services", "endpointslices"):
        page = await get(http, f"/api/v1/{view}")
        assert page["items"] == await served.mgr.resources(kind=view) and page["continue"] is None
        assert page["count"] == len(page["items"])
    page = await get(http, "/api/v1/resources", kind="pods", namespace="kube-system")
    assert [(r["cluster"], r["kind"], r["name"]) for r in page["items"]] == [("east", "pods", "coredns"), ("west", "pods", "coredns")]
    assert page["items"] == await served.mgr.resources(namespace="kube-system")
    assert len((await get(http, "/api/v1/resources", limit=1000))["items"]) == 14


async def test_filters(http: httpx.AsyncClient) -> None:
    async def names(**params: Any) -> list[tuple[str, str]]:
        return [(r["cluster"], r["name"]) for r in (await get(http, "/api/v1/pods", **params))["items"]]

    assert await names(namespace="shop", selector="app=web,tier!=db", cluster="west") == [("west", "web-1"), ("west", "web-2")]
    assert await names(selector="app in (db)") == [("east", "db-1"), ("west", "db-1")]
    assert await names(name="web-2") == [("east", "web-2"), ("west", "web-2")]
    assert await names(selector="!app", namespace="shop") == []
    bad = await get(http, "/api/v1/pods", 400, selector="app in (")
    assert bad["detail"]["code"] == "INVALID_ARGUMENT" and "selector" in bad["detail"]["message"]
    assert (await get(http, "/api/v1/pods", 400, at="yesterday"))["detail"]["code"] == "INVALID_ARGUMENT"
    await get(http, "/api/v1/pods", 422, limit=0)


async def test_paging_by_continue_token(http: httpx.AsyncClient, served: Served) -> None:
    everything = await served.mgr.resources()
    for limit in (1, 3, 7):
        rows: list[dict[str, Any]] = []
        token = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": limit}
            if token:
                params["continue"] = token
            page = await get(http, "/api/v1/resources", **params)
            assert page["count"] == len(page["items"]) <= limit
            rows += page["items"]
            pages += 1
            token = page["continue"]
            if token is None:
                break
        assert rows == everything and pages == -(-len(everything) // limit)
    first = await get(http, "/api/v1/pods", limit=2)
    other = await get(http, "/api/v1/pods", 400, limit=2, namespace="shop", **{"continue": first["continue"]})
    assert "another query" in other["detail"]["message"]
    await get(http, "/api/v1/pods", 400, **{"continue": "garbage!"})


async def test_sorting(http: httpx.AsyncClient) -> None:
    rows = (await get(http, "/api/v1/pods", sort="-pod_ip"))["items"]
    assert [r["pod_ip"] for r in rows] == sorted((r["pod_ip"] for r in rows), reverse=True)
    page = await get(http, "/api/v1/pods", sort="name", limit=3)
    rest = await get(http, "/api/v1/pods", sort="name", limit=10, **{"continue": page["continue"]})
    names = [r["name"] for r in page["items"] + rest["items"]]
    assert names == sorted(names) and len(names) == 8 and rest["continue"] is None
    await get(http, "/api/v1/pods", 422, sort="name; drop")


async def test_service_view(http: httpx.AsyncClient) -> None:
    view = await get(http, "/api/v1/services/shop/web")
    assert (view["namespace"], view["name"]) == ("shop", "web")
    by_cluster = {c["cluster"]: c for c in view["clusters"]}
    assert sorted(by_cluster) == ["east", "west"]
    assert (by_cluster["east"]["ready_endpoints"], by_cluster["west"]["ready_endpoints"]) == (2, 1)
    west = by_cluster["west"]
    assert west["endpointslices"] == [
        {"name": "web-abcde", "address_type": "IPv4", "endpoints": 2, "ready": 1, "serving": 1, "terminating": 0}
    ]
    assert [(e["pod"], e["ready"], e["pod_ready"]) for e in west["endpoints"]] == [("web-1", True, True), ("web-2", False, False)]
    assert [p["name"] for p in west["pods"]] == ["web-1", "web-2"] and west["pods_truncated"] is False
    assert west["selector"] == {"app": "web"} and west["type"] == "ClusterIP"
    assert [c["cluster"] for c in (await get(http, "/api/v1/services/shop/web", cluster="east"))["clusters"]] == ["east"]
    assert (await get(http, "/api/v1/services/shop/nothing", 404))["detail"]["code"] == "NOT_FOUND"


async def test_history_time_travel_and_diff(http: httpx.AsyncClient, served: Served) -> None:
    before = rfc3339(datetime.now(UTC))
    added = (await get(http, "/api/v1/changes", since="1h", kind="pods", limit=1000))["items"]
    assert len(added) == 8 and {c["type"] for c in added} == {"ADDED"}
    assert set(added[0]) >= {"type", "cluster", "kind", "namespace", "name", "resource_version", "applied_at", "changed_fields"}
    first = await get(http, "/api/v1/changes", since="1h", kind="pods", limit=5)
    rest = await get(http, "/api/v1/changes", since="1h", kind="pods", limit=5, **{"continue": first["continue"]})
    assert first["items"] + rest["items"] == added and rest["continue"] is None

    deletion = sync_pb2.ResourceKey(kind="pods", namespace="shop", name="web-2")
    ack = await served.edges["east"].send_state(delta_state("east", "edge-east", 3, deletions=[deletion]))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED
    now = {(r["cluster"], r["name"]) for r in (await get(http, "/api/v1/pods", namespace="shop"))["items"]}
    then = {(r["cluster"], r["name"]) for r in (await get(http, "/api/v1/pods", namespace="shop", at=before))["items"]}
    assert then - now == {("east", "web-2")}
    [deleted] = (await get(http, "/api/v1/changes", since=before, kind="pods", cluster="east"))["items"]
    assert (deleted["type"], deleted["name"], deleted["data"]) == ("DELETED", "web-2", None)
    diff = (await get(http, "/api/v1/diff", **{"from": before}, kind="pods"))["items"]
    assert [(d["type"], d["cluster"], d["name"]) for d in diff] == [("REMOVED", "east", "web-2")]
    assert (await get(http, "/api/v1/diff", 422))["detail"]
    assert (await get(http, "/api/v1/clusters", at=before))["items"][0]["counts"]["pods"] == 4


async def test_change_feed_events(http: httpx.AsyncClient, served: Served) -> None:
    async with http.stream("GET", "/api/v1/events", params={"kind": "pods", "cluster": "east"}) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        events = sse_events(response)
        assert (await anext(events))[0] == "ready"
        deletion = sync_pb2.ResourceKey(kind="pods", namespace="shop", name="web-1")
        upsert = shop_pod("web-9", "10.0.0.9", True)
        state = delta_state("east", "edge-east", 3, upserts=[upsert], deletions=[deletion])
        assert (await served.edges["east"].send_state(state)).status == sync_pb2.ACK_STATUS_APPLIED
        got = [await anext(events), await anext(events)]
        rows = {(name, orjson.loads(data)["type"], orjson.loads(data)["name"]) for name, data in got}
        assert rows == {("change", "ADDED", "web-9"), ("change", "DELETED", "web-1")}
        row = orjson.loads(got[0][1])
        assert set(row) >= {"type", "cluster", "kind", "namespace", "name", "uid", "resource_version", "labels", "data"}
        assert len(served.mgr.manager.feed) == 1
    # The client left: its subscription ends with it.
    deadline = asyncio.get_running_loop().time() + 10
    while len(served.mgr.manager.feed) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    assert len(served.mgr.manager.feed) == 0


async def sse_events(response: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """``(event, data)`` of each event of a Server-Sent Events stream; comments skipped."""
    name, data = "message", list[str]()
    async for line in response.aiter_lines():
        if line == "":
            if data:
                yield name, "\n".join(data)
            name, data = "message", list[str]()
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())


async def test_service_view_reads_cluster_by_cluster_past_its_budget(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One pods query serves every cluster; cut short by its read budget, the rest is asked per cluster."""
    whole = await get(http, "/api/v1/services/shop/web")
    monkeypatch.setattr(queries, "SERVICE_POD_READ", 3)
    assert await get(http, "/api/v1/services/shop/web") == whole
    monkeypatch.setattr(queries, "SERVICE_PODS", 1)
    cut = {c["cluster"]: c for c in (await get(http, "/api/v1/services/shop/web"))["clusters"]}
    assert [(len(c["pods"]), c["pods_truncated"]) for c in cut.values()] == [(1, True), (1, True)]
