"""``navigator manager`` as a real process: clean config errors, serving, SIGTERM, state across restarts."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import orjson

from navigator.testing.raw_edge import RawEdge, full_state, pod
from navigator.v1 import sync_pb2

COMMAND = [sys.executable, "-m", "navigator.cli.main"]
#: Seconds a wait may take before the test gives up: only a stuck process gets there.
CEILING = 120.0


def navigator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*COMMAND, *args], capture_output=True, text=True, timeout=CEILING)


def write_config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "manager.yaml"
    path.write_text(
        "listen: 127.0.0.1:0\n"
        f"storage: {{plugin: sqlite, options: {{path: {tmp_path / 'navigator.db'}}}}}\n"
        "grace_period: 1s\n"
        "auth: {tokens: {east: s3cret}}\n" + extra
    )
    return path


@asynccontextmanager
async def manager_process(config: Path) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, "manager", "--config", str(config), "--log-level", "WARNING",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), CEILING)).decode()
    assert line.startswith("listening on "), line
    try:
        yield proc, line.split()[-1]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def query(address: str, *args: str) -> list[dict[str, object]]:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, "query", *args, "--manager", address, "-o", "json", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), CEILING)
    assert proc.returncode == 0
    rows: list[dict[str, object]] = orjson.loads(out)
    return rows


def test_a_bad_config_is_one_line_naming_the_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, "limits: {max_chunks: lots}\n")
    result = navigator("manager", "--config", str(path))
    assert result.returncode == 2
    assert "limits.max_chunks" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_storage_plugin_lists_the_installed_ones(tmp_path: Path) -> None:
    path = tmp_path / "manager.yaml"
    path.write_text("listen: 127.0.0.1:0\nstorage: {plugin: nosuchdb}\n")
    result = navigator("manager", "--config", str(path))
    assert result.returncode == 2
    assert "'nosuchdb' is not installed" in result.stderr and "sqlite" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_storage_options_are_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "manager.yaml"
    path.write_text("listen: 127.0.0.1:0\nstorage: {plugin: sqlite, options: {path: /no/such/dir/x.db}}\n")
    result = navigator("manager", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: storage (sqlite): sqlite option path")
    assert "Traceback" not in result.stderr


def test_a_port_in_use_is_one_line_saying_so(tmp_path: Path) -> None:
    # Was: a gRPC C-core log line, then "Failed to bind ...; set GRPC_VERBOSITY=debug", never "in use".
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        path = tmp_path / "manager.yaml"
        path.write_text(f"listen: {address}\nstorage: {{options: {{path: {tmp_path / 'x.db'}}}}}\n")
        result = navigator("manager", "--config", str(path))
    assert result.returncode == 2
    assert result.stderr == f"error: listen: address {address} is already in use\n"


async def test_serves_until_sigterm_and_state_survives_a_restart(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    async with manager_process(config) as (proc, address):
        async with RawEdge(address, "s3cret") as edge:
            answer = await edge.identify("east", "edge-1", metadata={"region": "eu"})
            assert answer is not None and answer.WhichOneof("body") == "accept"
            ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")]}))
            assert ack.status == sync_pb2.ACK_STATUS_APPLIED
            [row] = await query(address, "clusters")
            assert row["status"] == "HEALTHY"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), CEILING) == 0

    async with manager_process(config) as (proc, address):
        [row] = await query(address, "clusters")
        assert (row["status"], row["connected"], row["counts"]) == ("DISCONNECTED", False, {"pods": 2})
        assert row["metadata"] == {"region": "eu"}
        assert [p["name"] for p in await query(address, "pods")] == ["a", "b"]
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), CEILING) == 0


async def test_the_config_logging_section_applies_without_flags(tmp_path: Path) -> None:
    config = write_config(tmp_path, "logging: {level: INFO, format: json}\n")
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, "manager", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    await asyncio.wait_for(proc.stdout.readline(), CEILING)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), CEILING)
    records = [orjson.loads(line) for line in err.splitlines() if line.startswith(b"{")]
    assert any("serving sync and query" in r["record"]["message"] for r in records)
