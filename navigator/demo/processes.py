"""Child processes of the demo: the real ``navigator`` commands, each logging to its own file.

Running the simulators, the manager and the edges as separate processes uses
every core, keeps the live view free of their logs, and lets a user kill one
edge (its pid is on the dashboard) to watch its cluster turn DISCONNECTED.
Children run in their own session so Ctrl-C reaches only the demo, which then
stops them in order; on Linux they also die with the demo if it is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from navigator.errors import NavigatorError

_PR_SET_PDEATHSIG = 1


def navigator_command(*args: str) -> list[str]:
    """The ``navigator`` CLI of this very interpreter, whatever is on PATH."""
    return [sys.executable, "-m", "navigator.cli.main", *args]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _die_with_parent() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


@dataclass
class Child:
    name: str
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def wait_for_line(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """Wait until the child writes a line matching ``pattern``; fail with its log if it dies first."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                text = self.log_path.read_text(errors="replace")
            except OSError:
                text = ""
            match = pattern.search(text)
            if match:
                return match
            if not self.alive():
                raise NavigatorError(self.failure(f"exited with code {self.returncode}"))
            if time.monotonic() > deadline:
                raise NavigatorError(self.failure(f"did not start within {timeout:.0f}s"))
            time.sleep(0.1)

    def failure(self, what: str) -> str:
        tail = self.log_tail()
        return f"{self.name} {what} (log: {self.log_path})" + (f"\n{tail}" if tail else "")


def spawn(name: str, args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None) -> Child:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            navigator_command(*args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
            preexec_fn=_die_with_parent(),  # only prctl: safe between fork and exec
        )
    return Child(name=name, log_path=log_path, process=process)


def stop(children: Sequence[Child], grace: float = 10.0) -> None:
    """SIGTERM every child, wait up to ``grace`` seconds for all of them, SIGKILL the rest."""
    for child in children:
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
            child.process.wait()
