"""The generated protobuf code is committed and must match the .proto files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_has_not_drifted() -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (dev dependency) regenerates the code")
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_proto_paths_match_import_paths() -> None:
    from navigator.v1 import query_pb2, sync_pb2

    assert sync_pb2.DESCRIPTOR.name == "navigator/v1/sync.proto"
    assert query_pb2.DESCRIPTOR.name == "navigator/v1/query.proto"
    assert sync_pb2.DESCRIPTOR.package == "navigator.v1"


def test_chunked_state_round_trips() -> None:
    from navigator.v1 import sync_pb2

    state = sync_pb2.ClusterState(
        cluster_id="c1",
        sequence=7,
        type=sync_pb2.STATE_TYPE_FULL,
        kinds=["pods"],
        chunk=sync_pb2.Chunk(snapshot_sequence=7, index=0, count=3),
        resources=[sync_pb2.Resource(kind="pods", namespace="ns", name="p", uid="u", resource_version="1")],
    )
    decoded = sync_pb2.EdgeMessage.FromString(sync_pb2.EdgeMessage(state=state).SerializeToString())
    assert decoded.state.chunk.count == 3
    assert decoded.state.resources[0].name == "p"
