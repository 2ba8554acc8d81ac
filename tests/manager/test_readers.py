"""Query readers (``auth.readers``) over real gRPC: who may read, and what a cluster-limited reader sees."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from navigator.client.client import AsyncQueryClient, NotAuthorized
from navigator.errors import ConfigError
from navigator.interfaces import PeerInfo, QueryRefused
from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdge, RawEdges, delta_state, full_state, pod
from navigator.v1 import query_pb2, sync_pb2

TOKENS = {"east": "east-edge-token", "west": "west-edge-token"}
READERS = [
    {"name": "ops", "token": "ops-reader-token"},
    {"name": "east-team", "token": "east-reader-token", "clusters": ["east"]},
]
AN_HOUR_AGO = datetime.now(UTC) - timedelta(hours=1)

Call = Callable[[AsyncQueryClient], Awaitable[list[dict[str, Any]]]]


async def _rows(rows: AsyncIterator[dict[str, Any]], first: int | None = None) -> list[dict[str, Any]]:
    out = []
    async for row in rows:
        out.append(row)
        if first is not None and len(out) >= first:
            break
    return out


#: Every query RPC, as the client makes it; ``cluster`` '' asks for every cluster.
def calls(cluster: str = "") -> dict[str, Call]:
    c = cluster or None
    return {
        "ListClusters": lambda q: q.clusters(c),
        "ListResources": lambda q: _rows(q.resources(cluster=c)),
        "ListChanges": lambda q: _rows(q.changes(cluster=c)),
        "Diff": lambda q: _rows(q.diff(AN_HOUR_AGO, cluster=c)),
        "Watch": lambda q: _rows(q.watch(cluster=c, initial=True), first=1),
    }


RPCS = list(calls())


Fed = tuple[TestManager, dict[str, RawEdge]]


@pytest.fixture
async def fed(tmp_path: Path) -> AsyncIterator[Fed]:
    """Readers configured; east and west (connected edges "edge-east", "edge-west") each hold two pods."""
    async with run_test_manager(tmp_path, tokens=TOKENS, auth={"readers": READERS}) as mgr:
        edges = RawEdges(mgr.address, TOKENS)
        try:
            streams = {}
            for cluster in ("east", "west"):
                edge = streams[cluster] = await edges.claimed(cluster, f"edge-{cluster}")
                state = full_state(cluster, f"edge-{cluster}", 1, {"pods": [pod(f"{cluster}-1"), pod(f"{cluster}-2")]})
                assert (await edge.send_state(state)).status == sync_pb2.ACK_STATUS_APPLIED
            yield mgr, streams
        finally:
            await edges.close()


@pytest.mark.parametrize("rpc", RPCS)
async def test_every_query_without_a_token_is_unauthenticated(fed: Fed, rpc: str) -> None:
    mgr, _ = fed
    async with mgr.query_client() as client:
        with pytest.raises(NotAuthorized) as refused:
            await calls()[rpc](client)
    assert refused.value.code == "UNAUTHENTICATED"
    assert "reader's token" in str(refused.value)


@pytest.mark.parametrize("rpc", RPCS)
async def test_a_wrong_token_is_refused_without_being_echoed(fed: Fed, rpc: str) -> None:
    mgr, _ = fed
    async with mgr.query_client("not-a-reader-token") as client:
        with pytest.raises(NotAuthorized) as refused:
            await calls()[rpc](client)
    assert refused.value.code == "UNAUTHENTICATED"
    assert "not-a-reader-token" not in str(refused.value)


async def test_an_edge_token_is_not_a_reader_token(fed: Fed) -> None:
    mgr, _ = fed
    for token in TOKENS.values():
        async with mgr.query_client(token) as client:
            for rpc, call in calls().items():
                with pytest.raises(NotAuthorized) as refused:
                    await call(client)
                assert refused.value.code == "UNAUTHENTICATED", rpc


async def test_an_unlimited_reader_sees_every_cluster_and_its_edge(fed: Fed) -> None:
    mgr, _ = fed
    async with mgr.query_client("ops-reader-token") as client:
        rows = await client.clusters()
        assert [(r["cluster"], r["edge_id"]) for r in rows] == [("east", "edge-east"), ("west", "edge-west")]
        assert {r["cluster"] for r in await _rows(client.resources(kind="pods"))} == {"east", "west"}


async def test_a_limited_reader_sees_only_its_clusters_in_every_query(fed: Fed) -> None:
    mgr, edges = fed
    west, east = edges["west"], edges["east"]
    before = datetime.now(UTC)
    await asyncio.sleep(0.01)
    state = delta_state("west", "edge-west", 2, [pod("west-3")])
    assert (await west.send_state(state)).status == sync_pb2.ACK_STATUS_APPLIED
    async with mgr.query_client("east-reader-token") as client:
        clusters = await client.clusters()
        assert [r["cluster"] for r in clusters] == ["east"]
        assert clusters[0]["edge_id"] == ""  # a limited reader never learns an edge id
        assert [r["cluster"] for r in await client.clusters(at=datetime.now(UTC))] == ["east"]
        assert all(r["edge_id"] == "" for r in await client.clusters(at=datetime.now(UTC)))
        pods = await _rows(client.resources(kind="pods"))
        assert sorted(p["name"] for p in pods) == ["east-1", "east-2"]
        assert sorted(p["name"] for p in await _rows(client.resources(kind="pods", limit=1))) == ["east-1"]
        changes = await _rows(client.changes())
        assert changes and {c["cluster"] for c in changes} == {"east"}
        assert await _rows(client.changes(since=before)) == []  # west's new pod is not shown
        diff = await _rows(client.diff(AN_HOUR_AGO))
        assert sorted((d["cluster"], d["name"]) for d in diff) == [("east", "east-1"), ("east", "east-2")]
        assert await _rows(client.diff(before)) == []

        # Watch: the initial listing and the live changes are east's only.
        watched: list[dict[str, Any]] = []

        async def watch() -> None:
            async for row in client.watch(kind="pods", initial=True):
                watched.append(row)
                if row["name"] == "east-3":
                    return

        task = asyncio.create_task(watch())
        while len(watched) < 2:
            await asyncio.sleep(0.02)
        assert (await west.send_state(delta_state("west", "edge-west", 3, [pod("west-4")]))).status == (
            sync_pb2.ACK_STATUS_APPLIED
        )
        assert (await east.send_state(delta_state("east", "edge-east", 2, [pod("east-3")]))).status == (
            sync_pb2.ACK_STATUS_APPLIED
        )
        await asyncio.wait_for(task, 10)
    assert [(r["cluster"], r["name"]) for r in watched] == [("east", "east-1"), ("east", "east-2"), ("east", "east-3")]


@pytest.mark.parametrize("rpc", RPCS)
async def test_a_limited_reader_asking_for_another_cluster_is_denied(
    fed: Fed, rpc: str
) -> None:
    mgr, _ = fed
    async with mgr.query_client("east-reader-token") as client:
        with pytest.raises(NotAuthorized) as refused:
            await calls("west")[rpc](client)
        assert refused.value.code == "PERMISSION_DENIED"
        assert "west" in str(refused.value) and "edge-west" not in str(refused.value)
        assert await calls("east")[rpc](client)  # its own cluster, asked for by name, is answered


async def test_without_readers_queries_are_open_and_the_manager_warns(tmp_path: Path) -> None:
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    try:
        async with run_test_manager(tmp_path, tokens=TOKENS) as mgr, mgr.query_client() as client:
            assert await client.clusters() == []
            assert await _rows(client.resources()) == []
    finally:
        logger.remove(sink)
    assert sum("QUERIES ARE OPEN" in w for w in warnings) == 1


async def test_with_readers_the_manager_does_not_warn_about_open_queries(tmp_path: Path) -> None:
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(m.record["message"]), level="WARNING")
    try:
        async with run_test_manager(tmp_path, auth={"readers": READERS}):
            pass
    finally:
        logger.remove(sink)
    assert not any("QUERIES ARE OPEN" in w for w in warnings)


async def test_a_reader_token_file_is_read_at_startup(tmp_path: Path) -> None:
    token_file = tmp_path / "reader.token"
    token_file.write_text("from-a-file\n")
    readers = [{"name": "file", "token_file": str(token_file), "clusters": ["east"]}]
    async with run_test_manager(tmp_path, tokens=TOKENS, auth={"readers": readers}) as mgr:
        token_file.write_text("changed-later\n")  # read once, at startup
        async with mgr.query_client("from-a-file") as client:
            assert await client.clusters() == []
        async with mgr.query_client("changed-later") as client:
            with pytest.raises(NotAuthorized):
                await client.clusters()


@pytest.mark.parametrize(
    ("reader", "expected"),
    [
        ({"name": "gone", "token_file": "missing.token"}, r"auth.readers\[0\].token_file: cannot read .*missing.token"),
        ({"name": "blank", "token_file": "empty.token"}, r"auth.readers\[0\].token_file: .*empty.token is empty"),
        ({"name": "edge", "token": TOKENS["west"]}, r"auth.readers\[0\]: reader 'edge' has the token of an edge"),
    ],
)
async def test_a_bad_reader_credential_stops_the_start_naming_it(
    tmp_path: Path, reader: dict[str, str], expected: str
) -> None:
    (tmp_path / "empty.token").write_text("\n")
    if "token_file" in reader:
        reader = {**reader, "token_file": str(tmp_path / reader["token_file"])}
    with pytest.raises(ConfigError, match=expected):
        async with run_test_manager(tmp_path, tokens=TOKENS, auth={"readers": [reader]}):
            pass


# -- mTLS ---------------------------------------------------------------------------------


async def test_a_client_certificate_reads_as_the_reader_it_is_mapped_to(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from navigator.config.common import ClientTLSConfig
    from navigator.testing.pki import Pki

    pki = Pki.create(tmp_path / "pki")
    tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key), "client_ca_file": str(pki.ca)}
    auth = {
        "identities": {"edge-east.example": "east"},
        "tokens": TOKENS,
        "readers": [{"name": "west-dashboard", "identity": "dashboard.example", "clusters": ["west"]}],
    }

    def client(mgr: TestManager, name: str, token: str | None = None) -> AsyncQueryClient:
        cert, key = pki.client(name)
        config = ClientTLSConfig(enabled=True, ca_file=pki.ca, cert_file=cert, key_file=key)
        return AsyncQueryClient(mgr.address, tls=config, token=token)

    async with run_test_manager(tmp_path, tls=tls, auth=auth) as mgr:
        async with client(mgr, "dashboard.example") as reader:
            assert await reader.clusters() == []
            with pytest.raises(NotAuthorized) as denied:
                await reader.clusters("east")
            assert denied.value.code == "PERMISSION_DENIED"
        # Any other certificate from the same CA, an edge's included, reads nothing.
        for name in ("edge-east.example", "someone.example"):
            async with client(mgr, name) as other:
                for rpc, call in calls().items():
                    with pytest.raises(NotAuthorized) as refused:
                        await call(other)
                    assert refused.value.code == "UNAUTHENTICATED", rpc
                    assert name in str(refused.value)
        # A wrong token is refused even with a reader's certificate.
        async with client(mgr, "dashboard.example", token="wrong") as mixed:
            with pytest.raises(NotAuthorized):
                await mixed.clusters()


async def test_a_watch_refused_ends_at_once(fed: Fed) -> None:
    """A refused watch never subscribes: nothing is left in the feed."""
    mgr, _ = fed
    async with mgr.query_client("east-reader-token") as client:
        with contextlib.suppress(NotAuthorized):
            await _rows(client.watch(cluster="west"), first=1)
    assert len(mgr.manager.feed) == 0


async def test_in_process_callers_without_a_peer_are_anonymous(fed: Fed) -> None:
    """Only the manager's own process reads without credentials (the harness passes ``IN_PROCESS``); a call
    with no peer, or a peer without credentials, is refused like a network caller."""
    mgr, _ = fed
    for peer in (None, PeerInfo(address="somewhere")):
        with pytest.raises(QueryRefused) as refused:
            await mgr.manager.list_clusters(query_pb2.ListClustersRequest(), peer)
        assert refused.value.code == "UNAUTHENTICATED"
    assert [r["cluster"] for r in await mgr.clusters()] == ["east", "west"]
    assert [r["edge_id"] for r in await mgr.clusters()] == ["edge-east", "edge-west"]
    limited = PeerInfo(address="somewhere", names=("not-a-reader", "dns.example"), token="east-reader-token")
    response = await mgr.manager.list_clusters(query_pb2.ListClustersRequest(), limited)
    assert [c.cluster for c in response.clusters] == ["east"]
