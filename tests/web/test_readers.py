"""``auth.readers`` guard every HTTP endpoint and the change feed, as they guard the gRPC query service:
401 without a reader's token, a cluster-limited reader sees its clusters only (403 when it asks for another)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from navigator.testing.raw_edge import delta_state
from navigator.v1 import sync_pb2

from .conftest import READERS, Served, shop_pod
from .test_api import sse_events

OPS = {"Authorization": "Bearer ops-reader-token"}
EAST = {"Authorization": "Bearer east-reader-token"}

DATA_ROUTES = [
    "/api/v1/clusters", "/api/v1/resources", "/api/v1/pods", "/api/v1/services", "/api/v1/endpointslices",
    "/api/v1/services/shop/web", "/api/v1/changes", "/api/v1/diff?from=1h", "/api/v1/events",
]  # fmt: skip


@pytest.fixture
def web_options() -> dict[str, Any]:
    return {"auth": {"readers": READERS}}


@pytest.mark.parametrize("path", DATA_ROUTES)
async def test_401_without_a_readers_token(http: httpx.AsyncClient, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic b3BzOng="}, {"Authorization": "Bearer"}):
        response = await http.get(path, headers=headers)
        assert response.status_code == 401, (path, headers, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["detail"]["code"] == "UNAUTHENTICATED"
        assert "wrong" not in response.text


async def test_open_parts(http: httpx.AsyncClient) -> None:
    """Probes, the dashboard's files and the OpenAPI document hold no cluster data: no token needed."""
    for path in ("/healthz", "/readyz", "/", "/openapi.json", "/static/app.js"):
        assert (await http.get(path)).status_code == 200, path


async def test_a_reader_of_everything(http: httpx.AsyncClient) -> None:
    rows = (await http.get("/api/v1/clusters", headers=OPS)).json()["items"]
    assert [r["cluster"] for r in rows] == ["east", "west"] and rows[0]["edge_id"] == "edge-east"
    assert len((await http.get("/api/v1/pods", headers=OPS)).json()["items"]) == 8


async def test_a_cluster_limited_reader(http: httpx.AsyncClient) -> None:
    async def get(path: str, status: int = 200, /, **params: Any) -> Any:
        response = await http.get(path, params=params, headers=EAST)
        assert response.status_code == status, (path, params, response.text)
        return response.json()

    [east] = (await get("/api/v1/clusters"))["items"]
    assert east["cluster"] == "east" and east["edge_id"] == ""  # a limited reader is shown no edge ids
    assert {r["cluster"] for r in (await get("/api/v1/pods"))["items"]} == {"east"}
    assert {r["cluster"] for r in (await get("/api/v1/resources", limit=1000))["items"]} == {"east"}
    assert {r["cluster"] for r in (await get("/api/v1/pods", selector="app=web"))["items"]} == {"east"}
    assert [c["cluster"] for c in (await get("/api/v1/services/shop/web"))["clusters"]] == ["east"]
    assert {r["cluster"] for r in (await get("/api/v1/changes", since="1h"))["items"]} == {"east"}
    assert {r["cluster"] for r in (await get("/api/v1/diff", **{"from": "1h"}))["items"]} == {"east"}
    # Paging never reaches the other cluster either.
    page = await get("/api/v1/resources", limit=2)
    seen = {r["cluster"] for r in page["items"]}
    while page["continue"]:
        page = await get("/api/v1/resources", limit=2, **{"continue": page["continue"]})
        seen |= {r["cluster"] for r in page["items"]}
    assert seen == {"east"}
    for path in ("/api/v1/clusters", "/api/v1/pods", "/api/v1/resources", "/api/v1/services/shop/web",
                 "/api/v1/changes", "/api/v1/events"):  # fmt: skip
        refused = await get(path, 403, cluster="west")
        assert refused["detail"]["code"] == "PERMISSION_DENIED" and "west" in refused["detail"]["message"]
    assert (await get("/api/v1/diff", 403, cluster="west", **{"from": "1h"}))["detail"]["code"] == "PERMISSION_DENIED"


async def test_a_cluster_limited_readers_feed(http: httpx.AsyncClient, served: Served) -> None:
    """The event stream of a reader limited to east carries east's changes only."""
    async with http.stream("GET", "/api/v1/events", params={"kind": "pods"}, headers=EAST) as response:
        assert response.status_code == 200
        events = sse_events(response)
        assert (await anext(events))[0] == "ready"
        for cluster, sequence in (("west", 3), ("east", 3)):
            upsert = shop_pod(f"{cluster}-new", "10.0.0.99", True)
            state = delta_state(cluster, f"edge-{cluster}", sequence, upserts=[upsert])
            assert (await served.edges[cluster].send_state(state)).status == sync_pb2.ACK_STATUS_APPLIED
        name, data = await anext(events)
        assert name == "change" and (orjson.loads(data)["cluster"], orjson.loads(data)["name"]) == ("east", "east-new")
