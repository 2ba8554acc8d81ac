"""The log sink, wired into a real manager: every applied change becomes one JSON line."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from navigator_plugins.sinks.log import create

from navigator.errors import ConfigError
from navigator.testing.manager import run_test_manager
from navigator.testing.raw_edge import RawEdge, full_state, pod


async def test_changes_are_written_as_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "changes.jsonl"
    sinks = [{"plugin": "log", "options": {"path": str(out)}}]
    async with run_test_manager(tmp_path, sinks=sinks) as mgr, RawEdge(mgr.address) as edge:
        await edge.identify("east", "edge-1")
        await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("a"), pod("b")]}))
        await edge.send_state(full_state("east", "edge-1", 2, {"pods": [pod("a", resource_version="2")]}))
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(e["type"], e["name"]) for e in lines] == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    modified = lines[2]
    assert (modified["cluster"], modified["kind"], modified["namespace"]) == ("east", "pods", "default")
    assert (modified["old_resource_version"], modified["new_resource_version"]) == ("1", "2")
    assert modified["time"].endswith("Z")


async def test_stdout_by_default(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    from navigator.resource import Change, ChangeType

    sink = create({})
    await sink.send([Change("east", "pods", "ns", "p", "u", ChangeType.DELETED, "3", None)])
    await sink.close()
    [line] = capsysbinary.readouterr().out.splitlines()
    assert orjson.loads(line)["type"] == "DELETED"


async def test_bad_sink_options_fail_startup_naming_the_sink(tmp_path: Path) -> None:
    sinks = [{"plugin": "log", "options": {"path": str(tmp_path / "missing" / "x.jsonl")}}]
    with pytest.raises(ConfigError, match=r"sinks\.0\.options \(log\): path: directory .* does not exist"):
        async with run_test_manager(tmp_path, sinks=sinks):
            pass
