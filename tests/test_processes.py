"""navigator.processes with real children: readiness from the log, early failure with the log, stopping."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from navigator import processes
from navigator.processes import ProcessError


def test_waits_for_a_log_line_and_stops_the_child(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "sim.kubeconfig"
    child = processes.start(
        "sim", ["kubesim", "--port", "0", "--pods", "1", "--kubeconfig", str(kubeconfig)], tmp_path / "logs" / "sim.log"
    )
    try:
        url = child.wait_for(re.compile(r"listening on (http://\S+)"), timeout=60).group(1)
        assert url.startswith("http://127.0.0.1:") and kubeconfig.exists()
        assert child.wait_for("LISTENING ON")  # plain text matches in any case
        assert child.alive() and child.pid > 0
    finally:
        code = child.stop(signal.SIGTERM)
    assert not child.alive() and code == child.returncode


def test_a_child_that_exits_fails_the_wait_at_once_with_its_log(tmp_path: Path) -> None:
    child = processes.start("manager", ["manager", "--config", str(tmp_path / "missing.yaml")], tmp_path / "m.log")
    with pytest.raises(ProcessError) as failed:
        child.wait_for("listening", timeout=60)
    message = str(failed.value)
    assert re.match(r"manager exited with code [1-9]\d* while waiting for 'listening' in its log \(log: ", message)
    assert "missing.yaml" in message  # the tail of the log says why
    assert child.returncode not in (None, 0)


def test_a_condition_that_never_holds_times_out_naming_it() -> None:
    with pytest.raises(ProcessError, match=r"timed out after 0s waiting for the impossible"):
        processes.wait_until(lambda: False, "the impossible", timeout=0.2, interval=0.05)
    assert processes.wait_until(lambda: 7, "a number") == 7


def test_free_ports_are_free() -> None:
    port = processes.free_port()
    assert processes.port_is_free(port)


PARENT = """
import sys, time
from pathlib import Path
from navigator import processes
tmp = Path(sys.argv[1])
child = processes.start("sim", ["kubesim", "--kubeconfig", str(tmp / "kc")], tmp / "sim.log")
child.wait_for("listening on", timeout=60)
print(child.pid, flush=True)
time.sleep(600)
"""


def test_a_child_ends_when_the_process_that_started_it_dies(tmp_path: Path) -> None:
    """A test run or demo killed with SIGKILL leaves no simulator, manager or edge behind."""
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        pid = int(parent.stdout.readline())
        assert Path(f"/proc/{pid}").exists()
    finally:
        parent.kill()
        parent.wait()
    processes.wait_until(lambda: not _running(pid), "the orphaned child to end", timeout=30, interval=0.1)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"
