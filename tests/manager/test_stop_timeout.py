"""A manager told to stop exits, even when a step of its shutdown hangs (``stop_timeout``).

Seen once under load with 1,000 edges: the manager did not exit after SIGTERM and kept its
port and database. A step that never ends is injected here (closing the change feed); the process
must exit on its own within the timeout, say which step hung, and leave what it stored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from navigator.testing.raw_edge import RawEdge, full_state, pod

SCRIPT = textwrap.dedent(
    """
    import asyncio, sys
    from navigator.config.manager import ManagerConfig
    from navigator.manager import app, change_feed

    async def never(self) -> None:
        await asyncio.Event().wait()

    change_feed.ChangeFeed.close = never  # the step that hangs
    config = ManagerConfig.model_validate(
        {"listen": "127.0.0.1:0", "storage": {"plugin": "sqlite", "options": {"path": sys.argv[1]}},
         "stop_timeout": "1s"}
    )
    sys.exit(asyncio.run(app.run_manager(config)))
    """
)


@pytest.mark.timeout(60)
async def test_a_hanging_shutdown_ends_at_stop_timeout(tmp_path: Path) -> None:
    script = tmp_path / "manager.py"
    script.write_text(SCRIPT)
    db = tmp_path / "navigator.db"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on"), line
        async with RawEdge(line.split()[-1]) as edge:
            await edge.identify("east", "edge-1")
            ack = await edge.send_state(full_state("east", "edge-1", 1, {"pods": [pod("kept")]}))
            assert ack.added == 1
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    assert "did not stop within stop_timeout (1s), stuck closing the change feed" in err
    import sqlite3

    with sqlite3.connect(db) as conn:  # what was acked before the stop is stored
        assert conn.execute("SELECT name FROM resources").fetchall() == [("kept",)]
