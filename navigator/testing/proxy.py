"""A TCP proxy that cuts, blackholes, slows or drips connections on cue: network faults for an edge.

Between an edge and its manager, or between an edge and its Kubernetes API server.

It runs its own event loop on a thread, so synchronous tests and benchmarks drive
it as easily as asynchronous ones, and it counts the bytes each way (what a
reconnect costs on the wire).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass


@dataclass(slots=True, eq=False)
class _Connection:
    """One proxied connection; a severed one never forwards again (its state was lost on the way)."""

    severed: bool = False


@dataclass(slots=True)
class Traffic:
    """Bytes forwarded so far: client → target (``up``) and back (``down``)."""

    up: int = 0
    down: int = 0
    connections: int = 0


class TcpProxy:
    """``with TcpProxy("127.0.0.1", port) as proxy:`` point the client at ``proxy.address``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.traffic = Traffic()
        self.port = 0
        #: Seconds each chunk of data waits before it is forwarded (a slow link); 0: none.
        self.delay = 0.0
        #: (bytes, seconds): forward at most that many bytes, then wait that long (a dripping link); None: off.
        self.drip: tuple[int, float] | None = None
        self._refusing = False
        self._blackholed = False
        self._severing = False
        self._connections: set[_Connection] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="navigator-test-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coroutine: object, timeout: float = 10.0) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)  # type: ignore[arg-type]

    def start(self) -> None:
        self._thread.start()
        self._run(self._start())

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """Drop every open connection and refuse new ones until ``restore``."""
        self._run(self._cut())

    async def _cut(self) -> None:
        self._refusing = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self._refusing = False

    def blackhole(self, on: bool, *, sever: bool = False) -> None:
        """While on, connections stay open but nothing gets through either way: a peer that went silent.

        With ``sever``, the connections open meanwhile never carry data again, even after it is
        off (a middlebox that lost their state drops their packets for good); new ones work.
        """
        if sever and on:
            self._severing = True
            for connection in list(self._connections):
                connection.severed = True
        if not on:
            self._severing = False
        self._blackholed = on

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._run(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _close(self) -> None:
        await self._cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        current = asyncio.current_task()
        rest = [task for task in asyncio.all_tasks() if task is not current]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        try:
            target_reader, target_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.traffic.connections += 1
        self._writers.update((writer, target_writer))
        connection = _Connection(severed=self._severing)
        self._connections.add(connection)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(
                    self._pipe(reader, target_writer, connection, up=True),
                    self._pipe(target_reader, writer, connection, up=False),
                )
        finally:
            self._connections.discard(connection)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: _Connection, *, up: bool
    ) -> None:
        try:
            while data := await reader.read(1 << 16):
                if self._blackholed or connection.severed:
                    continue
                if self.delay:
                    await asyncio.sleep(self.delay)
                while self.drip is not None and data and not connection.severed:
                    size, pause = self.drip
                    piece, data = data[:size], data[size:]
                    await self._forward(writer, piece, up=up)
                    await asyncio.sleep(pause)
                if data and not connection.severed:
                    await self._forward(writer, data, up=up)
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _forward(self, writer: asyncio.StreamWriter, data: bytes, *, up: bool) -> None:
        if up:
            self.traffic.up += len(data)
        else:
            self.traffic.down += len(data)
        writer.write(data)
        await writer.drain()
