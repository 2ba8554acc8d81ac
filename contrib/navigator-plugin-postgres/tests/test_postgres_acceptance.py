"""The issue's acceptance, end to end: a simulated cluster, a real edge, two real managers on one PostgreSQL.

An edge syncs through the first manager; the second serves the same pods; an
edge for the same cluster pointed at the second is rejected; after everything
stops and a manager starts again, every object is still there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from navigator.kubesim import KubeSim
from navigator.testing.edge import run_test_edge
from navigator.testing.manager import run_test_manager
from navigator.testing.raw_edge import RawEdge
from navigator.v1 import sync_pb2

TOKENS = {"east": "s3cret"}


def key(row: dict[str, Any]) -> tuple[str, str, str]:
    return row["namespace"], row["name"], row["uid"]


async def test_two_managers_share_one_postgres(tmp_path: Path, pg_options: dict[str, Any]) -> None:
    shared: dict[str, Any] = {"storage": "postgres", "storage_options": pg_options, "tokens": TOKENS}
    with KubeSim(pods=150, services=12, namespaces=3, seed=6, kubeconfig_path=tmp_path / "kubeconfig") as sim:
        expected = {(p["metadata"]["namespace"], p["metadata"]["name"], p["metadata"]["uid"]) for p in sim.list("pods")}
        async with (
            run_test_manager(tmp_path, manager_id="manager-a", **shared) as first,
            run_test_manager(tmp_path, manager_id="manager-b", **shared) as second,
            run_test_edge(sim.kubeconfig_path, sim.context, first.address, "east",
                          manager={"token": TOKENS["east"]}) as edge,  # fmt: skip
        ):
            synced = await first.wait_for_status("east", "HEALTHY")
            assert synced["counts"]["pods"] == len(expected)

            # The second manager serves the same state and reports the same connected edge.
            assert {key(r) for r in await second.resources(kind="pods")} == expected
            seen_by_second = await second.wait_for_status("east", "HEALTHY")
            assert seen_by_second["edge_id"] == edge.edge_id and seen_by_second["connected"]
            assert seen_by_second["counts"] == synced["counts"]

            # A second edge for the cluster, pointed at the second manager, is turned away.
            async with RawEdge(second.address, token=TOKENS["east"]) as intruder:
                answer = await intruder.identify("east", "another-edge")
            assert answer is not None and answer.WhichOneof("body") == "reject"
            assert answer.reject.reason == sync_pb2.REJECT_REASON_ALREADY_HELD
            assert answer.reject.holder_edge_id == edge.edge_id

        # Everything stopped. A manager starting on the same database has every object.
        async with run_test_manager(tmp_path, manager_id="manager-c", **shared) as restarted:
            assert {key(r) for r in await restarted.resources(kind="pods")} == expected
            row = await restarted.cluster("east")
            assert row is not None and row["status"] == "DISCONNECTED" and not row["connected"]
            assert row["counts"]["services"] == sim.count("services")
