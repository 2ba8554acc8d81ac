"""No silent staleness (#14), from outside, with real processes: `navigator kubesim`, `navigator manager`
and `navigator edge`, the edge reaching its API through a TCP proxy that can blackhole it.

What a user sees is `navigator query clusters`: a cluster whose edge cannot reach its
Kubernetes API, or whose states the manager cannot store, is not HEALTHY, says why,
and shows how old its copy is; it is HEALTHY again once the fault is gone. The waits
are for conditions, with a ceiling only a stuck process reaches; nothing is timed.
"""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from navigator.testing.processes import Fleet, free_port, navigator_command, query, wait_until
from navigator.testing.proxy import TcpProxy

#: Seconds a wait may take before the test gives up: only a stuck process gets there.
CEILING = 120.0
KINDS = ["endpointslices", "pods", "services"]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def cluster(port: int, name: str) -> dict[str, Any] | None:
    rows = query(port, "clusters", check=False) or []
    return next((r for r in rows if r["cluster"] == name), None)


def healthy(port: int, name: str) -> dict[str, Any] | None:
    row = cluster(port, name)
    ok = row is not None and row["status"] == "HEALTHY" and not row["status_reason"] and not row["errors"]
    return row if ok else None


def through(proxy: TcpProxy, kubeconfig: Path) -> Path:
    """The simulator's kubeconfig, pointed at ``proxy``."""
    config = yaml.safe_load(kubeconfig.read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = f"http://{proxy.address}"
    path = kubeconfig.with_name("through-proxy.kubeconfig")
    path.write_text(yaml.safe_dump(config))
    return path


def table(port: int) -> str:
    result = subprocess.run(
        navigator_command("query", "clusters", "--manager", f"127.0.0.1:{port}"),
        capture_output=True, text=True, timeout=CEILING, check=True,
    )  # fmt: skip
    return result.stdout


def test_a_blackholed_api_shows_stale_with_the_reason_and_the_copys_age(fleet: Fleet, tmp_path: Path) -> None:
    _, kubeconfig = fleet.kubesim("east", "--pods", "30", "--services", "3", "--namespaces", "2")
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    host, api_port = server.removeprefix("http://").rsplit(":", 1)
    with TcpProxy(host, int(api_port)) as proxy:
        port = free_port()
        fleet.manager("manager", port, tmp_path / "nav.db")
        edge = fleet.edge("edge", "east", through(proxy, kubeconfig), port, interval="1s")
        wait_until(lambda: healthy(port, "east"), "east HEALTHY", edge, timeout=CEILING)

        proxy.blackhole(True)  # connections stay open, nothing gets through: the API went silent
        down = wait_until(
            lambda: (r := cluster(port, "east")) and "Kubernetes API" in r["status_reason"] and r,
            "east reported unable to reach its API", edge, timeout=CEILING,
        )  # fmt: skip
        assert (down["status"], down["connected"]) == ("STALE", True)
        assert down["status_reason"].startswith("the edge cannot read any kind since ")
        assert "cannot reach the Kubernetes API" in down["status_reason"]
        assert sorted(e["kind"] for e in down["errors"]) == KINDS
        assert down["fresh_as_of"] is not None and down["age_seconds"] is not None
        assert down["counts"]["pods"] == 30  # the copy is still served, for what it is worth

        # States keep arriving (the edge is alive), but the copy's freshness stays where it was.
        later = wait_until(
            lambda: (r := cluster(port, "east")) and r["last_sync"] != down["last_sync"] and r,
            "a later state applied", edge, timeout=CEILING,
        )  # fmt: skip
        assert later["status"] == "STALE" and later["fresh_as_of"] == down["fresh_as_of"]
        assert later["age_seconds"] > down["age_seconds"]
        shown = table(port)
        assert "REASON" in shown and "STALE" in shown and "cannot reach the Kubernetes API" in shown

        proxy.blackhole(False)
        # HEALTHY may come a state before the copy is vouched for again (the watches reopening: the
        # age is still small, and shown); the freshness moves on once they are open.
        wait_until(
            lambda: (r := healthy(port, "east")) and r["fresh_as_of"] > down["fresh_as_of"],
            "east HEALTHY again, its copy fresh again", edge, timeout=CEILING,
        )  # fmt: skip


def test_a_manager_that_cannot_store_shows_the_storage_error(fleet: Fleet, tmp_path: Path) -> None:
    _, kubeconfig = fleet.kubesim("west", "--pods", "20", "--services", "2")
    port, db = free_port(), tmp_path / "nav.db"
    config = tmp_path / "manager.yaml"
    config.write_bytes(orjson.dumps({
        "listen": f"127.0.0.1:{port}",
        # Give up at once when another process holds the write lock, as a full disk fails at once.
        "storage": {"plugin": "sqlite", "options": {"path": str(db), "busy_timeout": "0.2s"}},
    }))  # fmt: skip
    manager = fleet.start("manager", "manager", "--config", str(config))
    manager.wait_until(lambda: query(port, "clusters", check=False) is not None, "an answer", interval=0.3)
    edge = fleet.edge("edge", "west", kubeconfig, port, interval="1s")
    wait_until(lambda: healthy(port, "west"), "west HEALTHY", edge, timeout=CEILING)

    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        failing = wait_until(
            lambda: (r := cluster(port, "west")) and r["status_reason"].startswith("storage error") and r,
            "west showing the storage error", edge, timeout=CEILING,
        )  # fmt: skip
        assert failing["status"] == "STALE" and failing["connected"]
        assert "database is locked" in failing["status_reason"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    wait_until(lambda: healthy(port, "west"), "west HEALTHY once storage works", edge, timeout=CEILING)
