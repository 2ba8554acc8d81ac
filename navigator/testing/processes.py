"""Real ``navigator`` processes for end-to-end tests: simulator, manager and edges as a user runs them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def navigator_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "navigator.cli.main", *args]


class Process:
    """A child process whose combined output goes to a file the test can read."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name, self.args, self.log = name, args, log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            args, stdout=self._out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text.lower() in self.output().lower():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"{self.name} never printed {text!r}; output:\n{self.output()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()
        return self.proc.returncode


class Fleet:
    """Starts processes and stops whatever is still running at the end of the test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[Process] = []

    def start(self, name: str, *args: str) -> Process:
        proc = Process(name, navigator_cmd(*args), self.tmp / f"{name}.log")
        self.procs.append(proc)
        return proc

    def kubesim(self, name: str, *extra: str) -> tuple[Process, Path]:
        kubeconfig = self.tmp / f"{name}.kubeconfig"
        proc = self.start(
            f"kubesim-{name}", "kubesim", "--kubeconfig", str(kubeconfig), "--name", name, *extra
        )
        proc.wait_for("listening on")
        return proc, kubeconfig

    def manager(
        self, name: str, port: int, db: Path, grace: str = "2s", tokens: dict[str, str] | None = None
    ) -> Process:
        config = self.tmp / f"{name}.yaml"
        auth = f"auth:\n  tokens: {orjson.dumps(tokens).decode()}\n" if tokens else ""
        config.write_text(
            f"listen: 127.0.0.1:{port}\nstorage:\n  plugin: sqlite\n  options: {{path: '{db}'}}\n"
            f"grace_period: {grace}\n{auth}"
        )
        proc = self.start(name, "manager", "--config", str(config))
        wait_until(lambda: query_ok(port), f"manager {name} answering on {port}", proc)
        return proc

    def edge(self, name: str, cluster: str, kubeconfig: Path, port: int, token: str | None = None,
             interval: str = "2s", edge_id: str | None = None) -> Process:  # fmt: skip
        config = self.tmp / f"{name}.yaml"
        lines = [
            f"cluster: {{id: {cluster}, metadata: {{region: test-1, environment: test}}}}",
            f"kubernetes: {{kubeconfig: '{kubeconfig}', page_size: 100}}",
            f"manager: {{address: '127.0.0.1:{port}', reconnect: {{initial: 0.2s, max: 1s}}"
            + (f", token: {token}" if token else "")
            + "}",
            f"sync: {{interval: {interval}, adaptive: {{enabled: false, min_interval: 1s, max_interval: 1m}}}}",
        ]
        if edge_id:
            lines.append(f"edge_id: {edge_id}")
        config.write_text("\n".join(lines) + "\n")
        return self.start(name, "edge", "--config", str(config))

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()


def query_ok(port: int) -> bool:
    return query(port, "clusters", check=False) is not None


def query(port: int, what: str, *args: str, check: bool = True) -> Any:
    result = subprocess.run(
        navigator_cmd("query", what, "--manager", f"127.0.0.1:{port}", "-o", "json", *args),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if result.returncode != 0:
        if check:
            raise AssertionError(f"navigator query {what} failed: {result.stderr}")
        return None
    return orjson.loads(result.stdout)


def wait_until(
    predicate: Callable[[], object], what: str, proc: Process | None = None, timeout: float = 60
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.proc.poll() is not None:
            raise AssertionError(
                f"{proc.name} exited ({proc.proc.returncode}) waiting for {what}:\n{proc.output()[-4000:]}"
            )
        time.sleep(0.3)
    tail = f"; {proc.name} output:\n{proc.output()[-4000:]}" if proc is not None else ""
    raise AssertionError(f"timed out waiting for {what}{tail}")


def kubectl_count(kubeconfig: Path, resource: str) -> int:
    out = subprocess.run(
        ["kubectl", "--kubeconfig", str(kubeconfig), "get", resource, "-A", "--chunk-size=50", "-o", "json"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    return len(orjson.loads(out)["items"])
