"""Build and run a manager from its configuration; usable in-process (tests, demo) and from the CLI."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pluggy
from loguru import logger

from navigator import metrics, plugin_manager
from navigator.config.manager import ManagerConfig
from navigator.errors import NavigatorError
from navigator.interfaces import ClusterClaims, ManagerStream, RunningServer, StorageBackend, StorageError
from navigator.manager.apply import StorageWorker
from navigator.manager.claims import InMemoryClaims
from navigator.manager.edge_session import EdgeSession, SyncContext
from navigator.manager.query_service import QueryService
from navigator.manager.reconciler import Reconciler
from navigator.manager.retention import Retention
from navigator.manager.sinks import SinkFanout
from navigator.v1 import query_pb2

#: How long ``stop`` lets streams end cleanly before the transport cuts them.
STOP_GRACE = 5.0


def open_storage(pm: pluggy.PluginManager, config: ManagerConfig) -> StorageBackend:
    plugin = plugin_manager.storage_backend(pm, config.storage.plugin)
    try:
        backend = plugin.create(config.storage.options)
        backend.migrate()
    except StorageError as exc:
        raise NavigatorError(f"storage ({config.storage.plugin}): {exc}") from None
    return backend


class Manager:
    """The manager: ``await start()``, serve until ``await stop()``; implements ``ManagerServices``."""

    def __init__(self, config: ManagerConfig, pm: pluggy.PluginManager | None = None) -> None:
        self.config = config
        self._pm = pm
        self._server: RunningServer | None = None
        self._ctx: SyncContext | None = None
        self._query: QueryService | None = None
        self._streams: set[EdgeSession] = set()
        self._retention: Retention | None = None

    @property
    def address(self) -> str:
        if self._server is None:
            raise RuntimeError("the manager is not started")
        return self._server.address

    @property
    def context(self) -> SyncContext:
        if self._ctx is None:
            raise RuntimeError("the manager is not started")
        return self._ctx

    @property
    def backend(self) -> StorageBackend:
        return self.context.backend

    @property
    def claims(self) -> ClusterClaims:
        return self.context.claims

    async def start(self) -> None:
        config = self.config
        pm = plugin_manager.load_plugins(config.enabled_plugins(), self._pm)
        serializers = plugin_manager.serializers(pm, config.plugins.serializers)
        transport = plugin_manager.create_transport(pm, config.transport.plugin, config.transport.options)
        sinks = SinkFanout.build(pm, config.sinks)
        backend = await asyncio.to_thread(open_storage, pm, config)
        claims = backend.create_claims(config.manager_id, config.grace_period)
        if claims is None:
            claims = InMemoryClaims(config.manager_id, config.grace_period)
        self._ctx = SyncContext(
            config=config,
            backend=backend,
            claims=claims,
            worker=StorageWorker(),
            reconciler=Reconciler(backend, history=config.history.enabled),
            serializers=serializers,
            sinks=sinks,
        )
        self._query = QueryService(self._ctx)
        self._retention = Retention(config.history, backend, self._ctx.worker)
        if config.auth is None:
            logger.warning(
                "NO AUTHENTICATION: any edge may claim any cluster; set auth.tokens in the manager config"
            )
        try:
            self._server = await transport.serve(config.endpoint(), self)
        except BaseException:
            await self._close_parts()
            raise
        self._retention.start()
        logger.info(
            "manager {} serving sync and query on {} (storage {}, transport {})",
            config.manager_id,
            self._server.address,
            config.storage.plugin,
            config.transport.plugin,
        )

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """End every stream (edges see UNAVAILABLE and reconnect), stop serving, close storage."""
        if self._ctx is None:
            return
        self._ctx.stopping = True
        for session in list(self._ctx.sessions.values()):
            session.terminate("UNAVAILABLE", "the manager is shutting down")
        pending = [asyncio.create_task(s.done.wait()) for s in self._streams]
        if pending:
            await asyncio.wait(pending, timeout=grace)
            for task in pending:
                task.cancel()
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        await self._close_parts()
        logger.info("manager {} stopped", self.config.manager_id)

    async def _close_parts(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        if self._retention is not None:
            await self._retention.stop()
        await ctx.sinks.close()
        await ctx.keeper.close()  # queued releases land before the claims closes
        await asyncio.to_thread(ctx.worker.shutdown)
        ctx.claims.close()
        ctx.backend.close()

    # -- ManagerServices ---------------------------------------------------------------

    async def handle_sync(self, stream: ManagerStream) -> None:
        session = EdgeSession(self.context, stream)
        self._streams.add(session)
        try:
            await session.run()
        finally:
            self._streams.discard(session)

    async def list_clusters(self, request: query_pb2.ListClustersRequest) -> query_pb2.ListClustersResponse:
        assert self._query is not None
        return await self._query.list_clusters(request)

    async def list_resources(self, request: query_pb2.ListResourcesRequest) -> AsyncIterator[query_pb2.ResourcePage]:
        assert self._query is not None
        async for page in self._query.list_resources(request):
            yield page

    async def list_changes(self, request: query_pb2.ListChangesRequest) -> AsyncIterator[query_pb2.ChangePage]:
        assert self._query is not None
        async for page in self._query.list_changes(request):
            yield page

    async def diff(self, request: query_pb2.DiffRequest) -> AsyncIterator[query_pb2.DiffPage]:
        assert self._query is not None
        async for page in self._query.diff(request):
            yield page


async def run_manager(config: ManagerConfig) -> int:
    """Serve until SIGTERM or SIGINT, then shut down cleanly; the exit code for the CLI."""
    manager = Manager(config)
    metrics_server = metrics.serve_metrics(config.metrics)
    await manager.start()
    print(f"listening on {manager.address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await manager.stop()
        if metrics_server is not None:
            metrics_server.close()
    return 0
