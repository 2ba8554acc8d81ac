"""``navigator query clusters`` shows how fresh each copy is: FRESHNESS and LAG, and fields in ``-o json``.

A real ``navigator query`` process against a real manager fed by a raw edge
that stamps its states and objects with chosen observation times.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from navigator.cli.output import short_duration
from navigator.testing.manager import TestManager, run_test_manager
from navigator.testing.raw_edge import RawEdge, delta_state, full_state, pod
from navigator.v1 import sync_pb2

COMMAND = [sys.executable, "-m", "navigator.cli.main", "query"]



@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[TestManager]:
    async with run_test_manager(tmp_path) as mgr:
        yield mgr


async def navigator(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *COMMAND, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=dict(os.environ)
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def parse(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def rows(mgr: TestManager, *args: str) -> list[dict[str, Any]]:
    code, out, err = await navigator("clusters", "--manager", mgr.address, "-o", "json", *args)
    assert code == 0, err
    result: list[dict[str, Any]] = orjson.loads(out)
    return result


async def test_clusters_json_and_table_show_fresh_as_of_age_and_lag(manager: TestManager) -> None:
    now = float(int(time.time()))  # whole seconds: exact on the wire and in RFC 3339; taken when the test runs
    async with RawEdge(manager.address) as edge:
        await edge.identify("east", "edge-east", protocol_version=2, sync_interval=300)
        await edge.send_state(full_state("east", "edge-east", 1, {"pods": [pod("a")]}, timestamp=now - 600))
        changed = pod("a", resource_version="2", data={"phase": "Failed"})
        changed.observed_at.FromSeconds(int(now) - 400)
        await edge.send_state(delta_state("east", "edge-east", 2, [changed], timestamp=now - 300))
        changes = {c["type"]: c for c in await manager.changes(cluster="east")}
        applied = parse(changes["MODIFIED"]["applied_at"])

        [east] = await rows(manager)
        assert east["fresh_as_of"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 300))
        assert east["lag_seconds"] == pytest.approx(applied - (now - 400), abs=1e-6)
        assert east["age_seconds"] >= 300  # by the query's clock, after the state was taken
        keys = list(east)
        assert keys[keys.index("last_seen") + 1 : keys.index("last_seen") + 4] == [
            "fresh_as_of", "age_seconds", "lag_seconds"
        ]  # fmt: skip

        code, out, err = await navigator("clusters", "--manager", manager.address)
        assert code == 0, err
        header, line = out.splitlines()[:2]
        assert header.split()[:5] == ["CLUSTER", "STATUS", "FRESHNESS", "LAG", "EDGE"]
        cells = line.split()
        assert cells[0] == "east" and cells[2] in ("5m", "6m") and cells[3] == short_duration(east["lag_seconds"])

        # As it was at the first sync (the record kept then): the age at that time.
        first_sync = changes["ADDED"]["applied_at"]
        [then] = await rows(manager, "--at", first_sync)
        assert then["fresh_as_of"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 600))
        assert then["age_seconds"] == pytest.approx(parse(first_sync) - (now - 600), abs=1e-3)


async def test_a_cluster_with_no_state_yet_has_no_freshness(manager: TestManager) -> None:
    async with RawEdge(manager.address) as edge:
        await edge.identify("east", "edge-east", sync_interval=300)
        await manager.wait_for_status("east", "INITIALIZING")
        [east] = await rows(manager)
        assert (east["fresh_as_of"], east["age_seconds"], east["lag_seconds"]) == (None, None, None)
        code, out, err = await navigator("clusters", "--manager", manager.address)
        assert code == 0 and "FRESHNESS" in out and "INITIALIZING" in out, err


async def test_a_cluster_that_cannot_be_vouched_for_says_why_in_json_and_table(manager: TestManager) -> None:
    """The REASON column and ``status_reason``: what the edge reports (its API does not answer)."""
    unreachable = "cannot reach the Kubernetes API at http://10.0.0.1:6443: no answer to GET /version within 5s"
    now = time.time()
    async with RawEdge(manager.address) as edge:
        await edge.identify("east", "edge-east", protocol_version=2, kinds=["pods"])
        await edge.send_state(full_state("east", "edge-east", 1, {"pods": [pod("a")]}, timestamp=now - 120))
        errors = [sync_pb2.KindError(kind="pods", message=unreachable, cached=True)]
        await edge.send_state(delta_state("east", "edge-east", 2, errors=errors, timestamp=now - 120))
        [east] = await rows(manager)
        assert east["status"] == "STALE" and east["age_seconds"] >= 120
        assert east["status_reason"].startswith("the edge cannot read any kind since ")
        assert unreachable in east["status_reason"] and re.search(r"the copy is 1\d\ds old", east["status_reason"])
        keys = list(east)
        assert keys[keys.index("status") + 1] == "status_reason"
        code, out, err = await navigator("clusters", "--manager", manager.address)
        assert code == 0, err
        header, line = out.splitlines()[:2]
        assert header.split()[-1] == "REASON" and "STALE" in line and unreachable in line

        await edge.send_state(delta_state("east", "edge-east", 3))
        [east] = await rows(manager)
        assert (east["status"], east["status_reason"], east["errors"]) == ("HEALTHY", "", [])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, None), (0.0004, "0ms"), (0.045, "45ms"), (0.2, "0.2s"), (9.94, "9.9s"), (12.7, "12s"),
        (180, "3m"), (7300, "2h"), (3 * 86400, "3d"), (-0.3, "-0.3s"),
    ],
)  # fmt: skip
def test_spans_are_short(seconds: float | None, text: str | None) -> None:
    assert short_duration(seconds) == text
