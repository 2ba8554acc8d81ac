"""The HTTP server inside the manager's event loop: uvicorn serving the app as a task, started and stopped
with the ``Manager``.

The socket is bound here, before uvicorn runs, so a port in use is an error of
``start`` (uvicorn would exit the process); uvicorn's signal handlers are left out,
since the manager's process owns SIGTERM and SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import uvicorn

from navigator.errors import NavigatorError
from navigator.manager.readers import Readers
from navigator.web.app import create_app

if TYPE_CHECKING:
    from navigator.manager.app import Manager

#: Seconds open streams (the change feed) get to end when the server stops.
STOP_GRACE = 2


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:  # worded as the gRPC port's: the one thing to know
            raise NavigatorError(f"http.listen: address {listen} is already in use") from None
        raise NavigatorError(f"http.listen {listen}: cannot listen: {exc.strerror or exc}") from None
    sock.setblocking(False)
    return sock


class HttpServer:
    """``await start()`` serves the API and dashboard on ``listen``; ``address`` is where (port 0: a free one)."""

    def __init__(self, manager: Manager, listen: str, readers: Readers) -> None:
        self.listen = listen
        self.app = create_app(manager, readers)
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def address(self) -> str:
        if self._socket is None:
            raise RuntimeError("the HTTP server is not started")
        host, port = self._socket.getsockname()[:2]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/"

    async def start(self) -> None:
        self._socket = _bind(self.listen)
        config = uvicorn.Config(
            self.app, log_config=None, access_log=False, lifespan="off", timeout_graceful_shutdown=STOP_GRACE,
            server_header=False,
        )  # fmt: skip
        self._server = server = _Server(config)
        self._task = task = asyncio.create_task(server.serve(sockets=[self._socket]), name="navigator-http")
        while not server.started:
            if task.done():
                task.result()
                raise NavigatorError(f"http.listen {self.listen}: the HTTP server did not start")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        server, task = self._server, self._task
        self._server = self._task = None
        if server is None or task is None:
            return
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._socket is not None:
            self._socket.close()
