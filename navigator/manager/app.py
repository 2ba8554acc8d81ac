"""Build and run a manager from its configuration; usable in-process (tests, demo) and from the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING

import pluggy
from loguru import logger

from navigator import metrics, plugin_manager
from navigator.config.manager import ManagerConfig
from navigator.errors import NavigatorError
from navigator.exit_codes import EXIT_FAILURE
from navigator.interfaces import (
    ClusterClaims,
    ManagerStream,
    PeerInfo,
    QueryRefused,
    RunningServer,
    StorageBackend,
    StorageError,
)
from navigator.interfaces.follow import ChangeFollower
from navigator.manager.apply import StorageWorker
from navigator.manager.change_feed import ChangeFeed
from navigator.manager.claims import InMemoryClaims
from navigator.manager.edge_session import EdgeSession, SyncContext
from navigator.manager.query_service import QueryService
from navigator.manager.readers import Reader, Readers
from navigator.manager.reconciler import Reconciler
from navigator.manager.retention import Retention
from navigator.manager.sinks import SinkFanout
from navigator.manager.watch_service import WatchService
from navigator.resource import Change
from navigator.v1 import query_pb2

if TYPE_CHECKING:
    from navigator.web.server import HttpServer

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
        self._feed = ChangeFeed()
        self._watch: WatchService | None = None
        self._unfollow: Callable[[], None] | None = None
        self._readers = Readers()
        self._http: HttpServer | None = None
        #: What ``stop`` is doing, for the message when it takes too long.
        self.stopping_step = "starting to stop"

    @property
    def address(self) -> str:
        if self._server is None:
            raise RuntimeError("the manager is not started")
        return self._server.address

    @property
    def http_url(self) -> str | None:
        """The dashboard's URL when ``http.listen`` is set and the manager is started."""
        return self._http.url if self._http is not None else None

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

    @property
    def feed(self) -> ChangeFeed:
        """The live change feed ``navigator watch`` reads."""
        return self._feed

    async def start(self) -> None:
        config = self.config
        self._readers = Readers.from_config(config.auth)  # token files read now: a bad one stops the start
        pm = plugin_manager.load_plugins(config.enabled_plugins(), self._pm)
        serializers = plugin_manager.serializers(pm, config.plugins.serializers)
        transport = plugin_manager.create_transport(pm, config.transport.plugin, config.transport.options)
        sinks = SinkFanout.build(pm, config.sinks)
        # The watch feed first: watchers see a change before a slow user sink is done with it.
        self._feed = ChangeFeed()
        sinks.sinks.insert(0, ("watch", self._feed))
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
        self._watch = WatchService(self._ctx, self._feed)
        self._retention = Retention(config.history, backend, self._ctx.worker)
        try:
            self._server = await transport.serve(config.endpoint(), self)
            if config.http.listen is not None:
                from navigator.web.server import HttpServer  # FastAPI is imported only when HTTP is on

                self._http = HttpServer(self, config.http.listen, self._readers)
                await self._http.start()
        except BaseException:
            self._http = None
            if self._server is not None:
                await self._server.stop(0)
                self._server = None
            await self._close_parts()
            raise
        # Once listening: a manager that cannot start says only why.
        if config.auth is None:
            logger.warning(
                "NO AUTHENTICATION: any edge may claim any cluster; set auth.tokens in the manager config"
            )
        elif not (config.auth.tokens or config.auth.identities):
            logger.warning("auth has no edge tokens or identities: every edge is refused; set auth.tokens")
        if self._readers.open:
            logger.warning(
                "QUERIES ARE OPEN: anyone who reaches {} may read every cluster; set auth.readers in the manager config",
                self._server.address,
            )
        self._retention.start()
        await self._follow(backend)
        if self._http is not None:
            logger.info("HTTP API and dashboard on {}", self._http.url)
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
        self.stopping_step = "closing the change feed"
        await self._feed.close()  # watchers end now, not after the transport's grace
        self.stopping_step = "stopping the HTTP API"
        if self._http is not None:
            http, self._http = self._http, None
            await http.stop()
        self.stopping_step = "ending the edges' streams"
        for session in list(self._ctx.sessions.values()):
            session.terminate("UNAVAILABLE", "the manager is shutting down")
        pending = [asyncio.create_task(s.done.wait()) for s in self._streams]
        if pending:
            await asyncio.wait(pending, timeout=grace)
            for task in pending:
                task.cancel()
        self.stopping_step = "stopping the transport"
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
        await self._close_parts()
        logger.info("manager {} stopped", self.config.manager_id)

    async def _close_parts(self) -> None:
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        self.stopping_step = "closing storage (following other managers, retention, sinks, claims, queued writes)"
        if self._unfollow is not None:
            unfollow, self._unfollow = self._unfollow, None
            try:
                await asyncio.to_thread(unfollow)
            except Exception as exc:
                logger.opt(exception=exc).error("storage: stopping to follow other managers' changes failed")
        if self._retention is not None:
            await self._retention.stop()
        await ctx.sinks.close()
        await ctx.keeper.close()  # queued releases land before the claims closes
        await asyncio.to_thread(ctx.worker.shutdown)
        ctx.claims.close()
        ctx.backend.close()

    async def _follow(self, backend: StorageBackend) -> None:
        """Feed watchers the changes other managers of the same database apply, if the backend can tell.

        Such a backend is a ``ChangeFollower``: it calls ``deliver`` from a thread of its
        own, so each batch is handed to the event loop, and returns the function that stops it.
        """
        if not isinstance(backend, ChangeFollower):
            return
        loop = asyncio.get_running_loop()
        feed = self._feed

        def deliver(changes: Sequence[Change]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the manager has stopped
                loop.call_soon_threadsafe(feed.publish, changes)

        try:
            self._unfollow = await asyncio.to_thread(backend.follow_changes, self.config.manager_id, deliver)
        except Exception as exc:
            logger.opt(exception=exc).error(
                "storage: cannot follow the changes other managers apply; watchers see this manager's only"
            )

    # -- ManagerServices ---------------------------------------------------------------

    async def handle_sync(self, stream: ManagerStream) -> None:
        session = EdgeSession(self.context, stream)
        self._streams.add(session)
        try:
            await session.run()
        finally:
            self._streams.discard(session)

    # Queries: ``peer`` ``None`` is a caller without credentials; the manager's own process passes
    # ``navigator.manager.readers.IN_PROCESS`` to read everything.

    def _reader(self, peer: PeerInfo | None, call: str) -> Reader:
        """Who asks; ``QueryRefused`` UNAUTHENTICATED (logged, without the token) if no reader."""
        try:
            return self._readers.resolve(peer)
        except QueryRefused as exc:
            logger.info("refused {} from {}: {}", call, peer.address if peer is not None else "?", exc.message)
            raise

    async def list_clusters(
        self, request: query_pb2.ListClustersRequest, peer: PeerInfo | None = None
    ) -> query_pb2.ListClustersResponse:
        reader = self._reader(peer, "ListClusters")
        assert self._query is not None
        return await self._query.list_clusters(request, reader)

    async def list_resources(
        self, request: query_pb2.ListResourcesRequest, peer: PeerInfo | None = None
    ) -> AsyncIterator[query_pb2.ResourcePage]:
        reader = self._reader(peer, "ListResources")
        assert self._query is not None
        async for page in self._query.list_resources(request, reader):
            yield page

    async def list_changes(
        self, request: query_pb2.ListChangesRequest, peer: PeerInfo | None = None
    ) -> AsyncIterator[query_pb2.ChangePage]:
        reader = self._reader(peer, "ListChanges")
        assert self._query is not None
        async for page in self._query.list_changes(request, reader):
            yield page

    async def diff(self, request: query_pb2.DiffRequest, peer: PeerInfo | None = None) -> AsyncIterator[query_pb2.DiffPage]:
        reader = self._reader(peer, "Diff")
        assert self._query is not None
        async for page in self._query.diff(request, reader):
            yield page

    async def watch(
        self, request: query_pb2.WatchRequest, peer: PeerInfo | None = None
    ) -> AsyncGenerator[query_pb2.ChangePage, None]:
        reader = self._reader(peer, "Watch")
        assert self._watch is not None
        async with contextlib.aclosing(self._watch.watch(request, reader)) as pages:  # the watcher left: unsubscribe now
            async for page in pages:
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
        # Streams and queued writes end within seconds; a step that hangs must not keep the process
        # (its port, its database) forever. What was acked is committed already.
        try:
            await asyncio.wait_for(manager.stop(), config.stop_timeout)
        except TimeoutError:
            logger.error(
                "the manager did not stop within stop_timeout ({:g}s), stuck {}; exiting without finishing",
                config.stop_timeout,
                manager.stopping_step,
            )
            sys.stderr.flush()
            os._exit(EXIT_FAILURE)  # threads or executor jobs still running would keep the process
        if metrics_server is not None:
            metrics_server.close()
    return 0
