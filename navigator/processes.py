"""Child ``navigator`` processes: start one, wait until it is ready, stop it.

The one way Navigator runs its own commands as children: ``navigator demo`` and
``navigator local`` run their simulators, manager and edges with it, and so do
the end-to-end tests (through ``navigator.testing.processes``).

Each child runs this interpreter's ``navigator`` CLI with its output in a log
file of its own, which is also what readiness is read from. Children run in
their own session so Ctrl-C reaches only the parent, which then stops them in
order; on Linux they also die with the parent if it is killed.
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
from typing import TypeVar

from navigator.errors import NavigatorError

T = TypeVar("T")

HOST = "127.0.0.1"
#: Lines of a child's log quoted when it fails.
TAIL_LINES = 40

_PR_SET_PDEATHSIG = 1


class ProcessError(NavigatorError):
    """A child exited, or was not ready in time; the message ends with the tail of its log."""


def navigator_command(*args: str) -> list[str]:
    """The ``navigator`` CLI of this very interpreter, whatever is on PATH."""
    return [sys.executable, "-m", "navigator.cli.main", *args]


def free_port(host: str = HOST) -> int:
    """A port nothing listens on right now (the child binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


#: Set by ``start`` to the parent's pid: the child asks the kernel to end it when the parent goes.
PARENT_ENV = "NAVIGATOR_DIE_WITH_PARENT"


def die_with_parent() -> None:
    """In a child ``start`` made: receive SIGTERM when the parent dies (Linux), exit if it is gone already.

    Done by the child itself, after exec, rather than in a ``preexec_fn``: that forces a
    plain ``fork()``, and a parent that has run gRPC can leave the forked child aborting
    before it execs (gRPC's fork handlers); without it the child is spawned safely.
    """
    expected = os.environ.pop(PARENT_ENV, "")
    if not sys.platform.startswith("linux") or not expected.isdigit():
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != int(expected):
        sys.exit(0)  # the parent died before the request was in place


@dataclass
class Child:
    """A running (or exited) ``navigator`` command and the log file it writes."""

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

    def output(self) -> str:
        """Everything the child has written so far (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = TAIL_LINES) -> str:
        return "\n".join(self.output().rstrip().splitlines()[-lines:])

    def failure(self, what: str) -> str:
        """``<name> <what> (log: <path>)`` and the end of the log: a message a user can act on."""
        tail = self.log_tail()
        return f"{self.name} {what} (log: {self.log_path})" + (f"\n{tail}" if tail else "")

    def wait_until(self, predicate: Callable[[], T | None], what: str, timeout: float = 60.0, interval: float = 0.1) -> T:
        """Poll ``predicate`` until it returns something true and return that; fail if the child
        exits first or ``timeout`` passes. ``what`` names the awaited: "an answer on port 5"."""
        return wait_until(predicate, what, child=self, timeout=timeout, interval=interval)

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        """Until the log matches ``pattern``: a regular expression as given, a string as text
        in any case. The match, to read what the line says (an address, a port)."""
        regex = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern), re.IGNORECASE)
        shown = pattern if isinstance(pattern, str) else pattern.pattern
        return self.wait_until(lambda: regex.search(self.output()), f"{shown!r} in its log", timeout)

    def stop(self, sig: int = signal.SIGTERM, grace: float = 15.0) -> int:
        """Send ``sig`` (SIGKILL after ``grace`` seconds); the exit code."""
        stop([self], grace, sig)
        return self.process.returncode


def wait_until(
    predicate: Callable[[], T | None],
    what: str,
    *,
    child: Child | None = None,
    timeout: float = 60.0,
    interval: float = 0.1,
) -> T:
    """Poll ``predicate`` until it returns something true, and return that.

    Raises ``ProcessError`` after ``timeout`` seconds, or as soon as ``child`` (the
    process expected to bring the condition about) has exited, quoting its log;
    ``what`` names the condition in the message ("... waiting for <what>").
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if child is not None and not child.alive():
            value = predicate()  # it may have done its part just before exiting
            if value:
                return value
            raise ProcessError(child.failure(f"exited with code {child.returncode} while waiting for {what}"))
        if time.monotonic() > deadline:
            timed_out = f"timed out after {timeout:.0f}s waiting for {what}"
            raise ProcessError(child.failure(timed_out) if child is not None else timed_out)
        time.sleep(interval)


def start(name: str, args: Sequence[str], log_path: Path, env: Mapping[str, str] | None = None) -> Child:
    """Run ``navigator <args>`` with ``env`` added to this environment, output to ``log_path``
    (created, or emptied if it exists)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            navigator_command(*args),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment,
            start_new_session=True,
        )
    return Child(name=name, log_path=log_path, process=process)


def stop(children: Sequence[Child], grace: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to every child, wait up to ``grace`` seconds for all of them, SIGKILL the rest."""
    for child in children:
        if child.alive():
            with contextlib.suppress(ProcessLookupError):
                child.process.send_signal(sig)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                child.process.kill()
            child.process.wait()
