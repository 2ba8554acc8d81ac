"""The live change feed as Server-Sent Events, from the manager's own watch (the core ``navigator watch`` uses).

Events: ``ready`` once the subscription is in place (a change applied after it is
sent), ``change`` per applied change (a ``navigator query changes -o json`` row),
``error`` (``{"code", "message"}``) when the manager ends the watch (the client fell
too far behind, the manager stops); a comment line every ``KEEPALIVE`` seconds keeps
proxies from closing an idle stream. The stream ends when the client leaves, and the
subscription with it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import orjson

from navigator.client.rows import change_row
from navigator.interfaces import QueryRefused
from navigator.v1 import query_pb2
from navigator.web.auth import Caller

if TYPE_CHECKING:
    from navigator.manager.app import Manager

#: Seconds between keep-alive comments on a quiet stream.
KEEPALIVE = 15.0

_END = object()


def event(name: str, data: bytes, id: int | None = None) -> bytes:
    head = f"id: {id}\n" if id is not None else ""
    return f"{head}event: {name}\n".encode() + b"data: " + data + b"\n\n"


async def stream(manager: Manager, caller: Caller, request: query_pb2.WatchRequest) -> AsyncIterator[bytes]:
    """The event stream of one client; the watch runs in a task so a quiet feed still yields keep-alives."""
    queue: asyncio.Queue[object] = asyncio.Queue(maxsize=4)

    async def pump() -> None:
        try:
            async with contextlib.aclosing(manager.watch(request, caller.peer)) as pages:
                async for page in pages:
                    await queue.put(page)
            await queue.put(_END)
        except QueryRefused as exc:
            await queue.put(exc)

    task = asyncio.create_task(pump())
    try:
        # The watch subscribes in its first step, before it first waits: once the task ran it, the feed is on.
        await asyncio.sleep(0)
        yield b"retry: 2000\n" + event("ready", b"{}")
        sent = 0
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), KEEPALIVE)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if item is _END:
                return
            if isinstance(item, QueryRefused):
                yield event("error", orjson.dumps({"code": item.code, "message": item.message}))
                return
            assert isinstance(item, query_pb2.ChangePage)
            chunks = []
            for record in item.changes:
                sent += 1
                chunks.append(event("change", orjson.dumps(change_row(record)), sent))
            yield b"".join(chunks)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
