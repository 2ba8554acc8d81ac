"""A small real grpc.aio server speaking the sync protocol, scripted per test.

It lets the stream client's tests cause what a real manager rarely does on cue:
rejecting, not acking, vanishing mid-stream, coming back on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from navigator.kubesim.tls import TLSMaterial
from navigator.v1 import sync_pb2, sync_pb2_grpc

RejectFn = Callable[[sync_pb2.Identify], sync_pb2.Reject | None]


@dataclass
class Connection:
    identify: sync_pb2.Identify
    metadata: dict[str, str]
    states: list[sync_pb2.ClusterState] = field(default_factory=list)
    #: When each state arrived (monotonic).
    arrived: list[float] = field(default_factory=list)
    accepted: bool = False
    ended: bool = False


class FakeManager(sync_pb2_grpc.SyncServicer):
    def __init__(self) -> None:
        self.port = 0
        self.server: grpc.aio.Server | None = None
        self.connections: list[Connection] = []
        #: Decide per Identify: a Reject to refuse, None to accept.
        self.reject: RejectFn = lambda identify: None
        #: False: receive states but never ack them.
        self.ack = True
        #: Status for final acks (ACK_STATUS_APPLIED by default).
        self.ack_status: Callable[[sync_pb2.ClusterState], int] = lambda s: sync_pb2.ACK_STATUS_APPLIED
        self.serializer = "protobuf"
        self.max_message_bytes = 0
        #: True: keep the highest sequence "applied" (final status APPLIED, acked or not) and
        #: announce it in Accept.last_sequence, as a manager that kept its database does.
        self.remember = False
        #: False: states arrive but are not applied (nor remembered), as when the manager dies first.
        self.apply = True
        self.applied_sequence = 0
        #: Not None: answer Identify.want_versions with these keys (Versions pages of ``versions_page``).
        self.versions: list[sync_pb2.ResourceKey] | None = None
        self.versions_page = 1000
        #: Accept.heartbeat_seconds; with ``echo`` every Heartbeat is answered (False: a frozen manager).
        self.heartbeat = 0.0
        #: Accept.open_chunk_sets: take FULLs sent while they are collected.
        self.open_chunk_sets = False
        self.echo = True
        self.heartbeats = 0
        self.changed = asyncio.Condition()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, tls: TLSMaterial | None = None) -> None:
        self.server = grpc.aio.server(options=[("grpc.max_receive_message_length", 256 << 20)])
        sync_pb2_grpc.add_SyncServicer_to_server(self, self.server)
        if tls is None:
            self.port = self.server.add_insecure_port(f"127.0.0.1:{self.port}")
        else:
            credentials = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
            self.port = self.server.add_secure_port(f"127.0.0.1:{self.port}", credentials)
        await self.server.start()

    async def stop(self, grace: float | None = None) -> None:
        """Go away (every open stream fails); ``start()`` again serves on the same port."""
        if self.server is not None:
            await self.server.stop(grace)
            self.server = None

    async def _notify(self) -> None:
        async with self.changed:
            self.changed.notify_all()

    async def wait_for(self, predicate: Callable[[FakeManager], bool], timeout: float = 10.0) -> None:
        async def until() -> None:
            async with self.changed:
                await self.changed.wait_for(lambda: predicate(self))

        await asyncio.wait_for(until(), timeout)

    # -- views -----------------------------------------------------------------------------

    @property
    def states(self) -> list[sync_pb2.ClusterState]:
        return [s for c in self.connections for s in c.states]

    def sets(self) -> list[list[sync_pb2.ClusterState]]:
        """FULL states (chunk sets joined, complete or not), in arrival order."""
        out: list[list[sync_pb2.ClusterState]] = []
        for state in self.states:
            if state.type != sync_pb2.STATE_TYPE_FULL:
                continue
            if (not is_open(state) and state.chunk.count <= 1) or state.chunk.index == 0 or not out:
                out.append([state])
            else:
                out[-1].append(state)
        return out

    def fulls(self) -> list[list[sync_pb2.ClusterState]]:
        """Complete FULL states (chunk sets joined, open or closed), in arrival order."""
        return [s for s in self.sets() if complete(s)]

    def deltas(self) -> list[sync_pb2.ClusterState]:
        return [s for s in self.states if s.type == sync_pb2.STATE_TYPE_DELTA]

    # -- the servicer ----------------------------------------------------------------------

    async def Connect(  # the gRPC method name
        self, request_iterator: AsyncIterator[sync_pb2.EdgeMessage], context: Any
    ) -> None:
        first = await context.read()
        if first is grpc.aio.EOF or first.WhichOneof("body") != "identify":
            return
        connection = Connection(first.identify, {k: v for k, v in context.invocation_metadata()})
        self.connections.append(connection)
        try:
            reject = self.reject(first.identify)
            if reject is not None:
                await context.write(sync_pb2.ManagerMessage(reject=reject))
                await self._notify()
                context.set_code(grpc.StatusCode.ALREADY_EXISTS)
                context.set_details(reject.message)
                return
            connection.accepted = True
            await context.write(
                sync_pb2.ManagerMessage(
                    accept=sync_pb2.Accept(
                        manager_id="fake",
                        serializer=self.serializer,
                        max_message_bytes=self.max_message_bytes,
                        last_sequence=self.applied_sequence if self.remember else 0,
                        versions_follow=first.identify.want_versions and self.versions is not None,
                        heartbeat_seconds=self.heartbeat,
                        open_chunk_sets=self.open_chunk_sets,
                    )
                )
            )
            if first.identify.want_versions and self.versions is not None:
                keys = self.versions
                for start in range(0, max(1, len(keys)), self.versions_page):
                    page = sync_pb2.Versions(
                        keys=keys[start : start + self.versions_page], last=start + self.versions_page >= len(keys)
                    )
                    await context.write(sync_pb2.ManagerMessage(versions=page))
            await self._notify()
            while True:
                message = await context.read()
                if message is grpc.aio.EOF:
                    return
                if message.WhichOneof("body") == "heartbeat":
                    self.heartbeats += 1
                    if self.heartbeat and self.echo:
                        await context.write(sync_pb2.ManagerMessage(heartbeat=sync_pb2.Heartbeat()))
                    await self._notify()
                    continue
                if message.WhichOneof("body") != "state":
                    continue
                state = message.state
                connection.states.append(state)
                connection.arrived.append(time.monotonic())
                chunked = (state.chunk.count > 1 and state.chunk.index < state.chunk.count - 1) or (
                    is_open(state) and not state.chunk.last
                )
                status = sync_pb2.ACK_STATUS_BUFFERED if chunked else self.ack_status(state)
                if self.apply and status == sync_pb2.ACK_STATUS_APPLIED:
                    self.applied_sequence = max(self.applied_sequence, state.sequence)
                if self.ack:
                    await context.write(sync_pb2.ManagerMessage(ack=sync_pb2.Ack(sequence=state.sequence, status=status)))
                await self._notify()
        finally:
            connection.ended = True
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().create_task(self._notify())


def is_open(state: sync_pb2.ClusterState) -> bool:
    """A chunk of an open set (count 0)."""
    return state.HasField("chunk") and state.chunk.count == 0


def complete(chunks: list[sync_pb2.ClusterState]) -> bool:
    """Whether the states of one set make a whole FULL: an open set's last chunk arrived, or all of a closed one."""
    if is_open(chunks[0]):
        return chunks[-1].chunk.last and [c.chunk.index for c in chunks] == list(range(len(chunks)))
    return len(chunks) == max(1, chunks[0].chunk.count)
