"""A TCP proxy that cuts, blackholes or slows connections on cue: network faults between an edge and its manager.

It runs its own event loop on a thread, so synchronous tests and benchmarks drive
it as easily as asynchronous ones, and it counts the bytes each way (what a
reconnect costs on the wire).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass


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
        self._refusing = False
        self._blackholed = False
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

    def blackhole(self, on: bool) -> None:
        """While on, connections stay open but nothing gets through either way: a peer that went silent."""
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
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(reader, target_writer, up=True),
                self._pipe(target_reader, writer, up=False),
            )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, up: bool) -> None:
        try:
            while data := await reader.read(1 << 16):
                if self._blackholed:
                    continue
                if self.delay:
                    await asyncio.sleep(self.delay)
                if up:
                    self.traffic.up += len(data)
                else:
                    self.traffic.down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
