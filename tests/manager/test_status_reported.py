"""What an edge reports about its own reading of the cluster, as the manager shows it.

A protocol 2 edge lists in every DELTA's ``errors`` what it cannot vouch for now
(its Kubernetes API unreachable, a watch down): the cluster turns STALE with a
reason at once, and the next DELTA without them clears them. A protocol 1 edge's
DELTA errors are stored as before (``test_states``). Raw edges over real gRPC
into a real manager on SQLite.
"""

from __future__ import annotations

import time

from navigator.testing.manager import TestManager
from navigator.testing.raw_edge import RawEdges, delta_state, full_state, pod
from navigator.v1 import sync_pb2

KINDS = ("services", "endpointslices", "pods")
UNREACHABLE = "cannot reach the Kubernetes API at http://10.0.0.1:6443: no answer to GET /version within 5s"


def unreachable() -> list[sync_pb2.KindError]:
    return [sync_pb2.KindError(kind=kind, message=UNREACHABLE, cached=True, attempts=1) for kind in KINDS]


async def test_an_unreachable_api_shows_at_once_and_clears_with_the_next_delta(
    edges: RawEdges, manager: TestManager
) -> None:
    edge = await edges.claimed("east", "edge-1", protocol_version=2, kinds=KINDS)
    vouched = time.time() - 5
    full = full_state("east", "edge-1", 1, {"pods": [pod("a")], "services": [], "endpointslices": []}, timestamp=vouched)
    assert (await edge.send_state(full)).status == sync_pb2.ACK_STATUS_APPLIED
    row = await manager.cluster("east")
    assert row is not None and (row["status"], row["status_reason"]) == ("HEALTHY", "")

    # The edge keeps its timestamp where it last could vouch for its copy.
    ack = await edge.send_state(delta_state("east", "edge-1", 2, errors=unreachable(), timestamp=vouched))
    assert ack.status == sync_pb2.ACK_STATUS_APPLIED
    row = await manager.cluster("east")
    assert row is not None and row["status"] == "STALE"
    assert row["status_reason"].startswith("the edge cannot read any kind since ")
    assert row["status_reason"].endswith(UNREACHABLE)
    assert sorted((e["kind"], e["cached"]) for e in row["errors"]) == [(k, True) for k in sorted(KINDS)]
    first_since = row["errors"][0]["since"]
    assert row["counts"]["pods"] == 1  # the copy stays, and says how old it is
    assert row["fresh_as_of"] is not None

    await edge.send_state(delta_state("east", "edge-1", 3, errors=unreachable(), timestamp=vouched))
    row = await manager.cluster("east")
    assert row is not None and row["errors"][0]["since"] == first_since  # still failing: since the first report

    await edge.send_state(delta_state("east", "edge-1", 4))
    row = await manager.cluster("east")
    assert row is not None and (row["status"], row["status_reason"], row["errors"]) == ("HEALTHY", "", [])


async def test_reported_errors_are_not_stored_and_a_full_replaces_them(edges: RawEdges, manager: TestManager) -> None:
    edge = await edges.claimed("east", "edge-1", protocol_version=2, kinds=KINDS)
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [], "services": [], "endpointslices": []}))
    await edge.send_state(delta_state("east", "edge-1", 2, errors=unreachable()))
    stored = manager.storage.get_cluster("east")
    assert stored is not None and stored.errors == []  # kept in memory: a DELTA without them clears them
    forbidden = sync_pb2.KindError(kind="pods", message="pods is forbidden", http_status=403)
    await edge.send_state(
        full_state("east", "edge-1", 3, {"services": [], "endpointslices": []}, errors=[forbidden])
    )
    row = await manager.cluster("east")
    assert row is not None and row["status"] == "STALE"
    assert [(e["kind"], e["http_status"]) for e in row["errors"]] == [("pods", 403)]
    assert row["status_reason"].startswith("the edge cannot read pods since ")
    assert row["status_reason"].endswith("pods is forbidden (HTTP 403)")


async def test_a_protocol_1_edges_delta_errors_stay_until_the_kind_collects_again(
    edges: RawEdges, manager: TestManager
) -> None:
    edge = await edges.claimed("east", "edge-1", protocol_version=1, kinds=KINDS)
    await edge.send_state(full_state("east", "edge-1", 1, {"pods": [], "services": [], "endpointslices": []}))
    await edge.send_state(delta_state("east", "edge-1", 2, errors=unreachable()[:1]))
    await edge.send_state(delta_state("east", "edge-1", 3))
    row = await manager.cluster("east")
    assert row is not None and row["status"] == "STALE" and [e["kind"] for e in row["errors"]] == ["services"]
