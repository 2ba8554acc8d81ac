"""The edge process: plugins, Kubernetes client, sync loop and stream client wired together.

``Edge`` runs in any event loop (the CLI, the demo, tests); ``run_edge`` adds
signal handling for the ``navigator edge`` command, and exits 4 when the
manager rejected the edge for good (``manager.max_rejections``). Stopping finishes or
abandons the in-flight send and closes the stream, so the manager's grace
period starts at once instead of after a keep-alive timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType

import pluggy
from loguru import logger

from navigator import metrics, plugin_manager
from navigator.config.edge import EdgeConfig
from navigator.edge.collect import KindCollector
from navigator.edge.kube import KubeClient
from navigator.edge.loop import SyncLoop
from navigator.edge.messages import Sequencer
from navigator.edge.outbox import Outbox
from navigator.edge.stream import GaveUp, StreamClient, StreamState, StreamStats
from navigator.exit_codes import EXIT_FAILURE, EXIT_OK, EXIT_REJECTED


class Edge:
    """One cluster's edge, usable in-process: ``await edge.start()`` ... ``await edge.stop()``."""

    def __init__(
        self,
        config: EdgeConfig,
        pm: pluggy.PluginManager | None = None,
        *,
        client: KubeClient | None = None,
    ) -> None:
        self.config = config
        self.pm = pm or plugin_manager.load_plugins(config.enabled_plugins())
        self.collectors = plugin_manager.collectors(self.pm, config.plugins.collectors)
        self.serializers = plugin_manager.serializers(self.pm, config.plugins.serializers)
        self.transport = plugin_manager.create_transport(
            self.pm, config.transport.plugin, config.transport.options
        )
        self.client = client
        self.sequencer = Sequencer()
        self.loop: SyncLoop | None = None
        self.stream: StreamClient | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._changed: asyncio.Condition | None = None
        self._failed: asyncio.Future[BaseException] | None = None

    @property
    def cluster_id(self) -> str:
        return self.config.cluster.id

    @property
    def edge_id(self) -> str:
        return self.config.edge_id

    @property
    def stats(self) -> StreamStats:
        """Stream counters (accepts, applied states, ...); zeros before start."""
        return self.stream.stats if self.stream is not None else StreamStats()

    @property
    def connected(self) -> bool:
        return self.stats.state == StreamState.CONNECTED

    async def start(self) -> None:
        if self.client is None:
            self.client = await asyncio.to_thread(KubeClient.from_config, self.config.kubernetes)
        self._changed = asyncio.Condition()
        self._failed = asyncio.get_running_loop().create_future()
        self._executor = ThreadPoolExecutor(
            max_workers=len(self.collectors) + 1, thread_name_prefix=f"navigator-list-{self.cluster_id}"
        )
        outbox = Outbox(self.config.manager.buffer.max_messages, self.config.manager.buffer.when_full)
        # Collections are packed with the preferred serializer; another negotiated one re-encodes.
        preferred = next(iter(self.serializers.values()))
        collectors = {
            name: KindCollector(
                c,
                self.client,
                self.config.kubernetes,
                preferred,
                executor=self._executor,
            )
            for name, c in self.collectors.items()
        }
        self.loop = SyncLoop(self.config, collectors, self.client, outbox)
        self.stream = StreamClient(
            self.config,
            self.transport,
            self.serializers,
            outbox,
            self.sequencer,
            kinds=list(self.collectors),
            on_accept=self.loop.request_full,
            on_resync=self.loop.request_full_soon,
            on_update=self._notify,
        )
        # A FULL is queued when its collection starts while the manager takes open chunk sets.
        self.loop.open_sets = self.stream.may_take_open_sets
        logger.info(
            "edge {} for cluster {} starting: {} via {}, manager {}, {} mode every {:g}s",
            self.edge_id,
            self.cluster_id,
            ", ".join(self.collectors),
            self.client.host,
            self.config.manager.address,
            self.config.sync.mode,
            self.config.sync.interval,
        )
        self._tasks = [
            self._watch_task(asyncio.create_task(self.loop.run(), name="navigator-edge-loop")),
            self._watch_task(self.stream.start()),
        ]

    def _watch_task(self, task: asyncio.Task[None]) -> asyncio.Task[None]:
        def done(t: asyncio.Task[None]) -> None:
            if t.cancelled() or self._failed is None or self._failed.done():
                return
            exc = t.exception()
            if isinstance(exc, GaveUp):  # a verdict, not a crash: the reason without a traceback
                logger.error("edge {} for cluster {} gives up: {}", self.edge_id, self.cluster_id, exc)
                self._failed.set_result(exc)
            elif exc is not None:
                logger.opt(exception=exc).error("edge task {} crashed: {!r}", t.get_name(), exc)
                self._failed.set_result(exc)

        task.add_done_callback(done)
        return task

    async def wait_failed(self) -> BaseException:
        """Returns the error if a task of the edge crashes (it never returns otherwise)."""
        assert self._failed is not None, "start() first"
        return await asyncio.shield(self._failed)

    def _notify(self) -> None:
        changed = self._changed
        if changed is None:
            return

        async def wake() -> None:
            async with changed:
                changed.notify_all()

        asyncio.get_running_loop().create_task(wake())

    async def wait_until(self, predicate: Callable[[Edge], bool], timeout: float = 30.0) -> None:
        """Wait for ``predicate(edge)`` to hold (re-checked on every stream event and every 0.1 s)."""
        assert self._changed is not None, "start() first"
        deadline = time.monotonic() + timeout
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"edge {self.edge_id}: condition not met within {timeout}s (stats: {self.stats})")
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), min(0.1, remaining))

    async def stop(self, timeout: float = 5.0) -> None:
        """Finish (or abandon after ``timeout``) the in-flight send, close the stream, stop collecting."""
        if self.stream is not None:
            await self.stream.stop(timeout)
        if self.loop is not None:
            self.loop.cancel()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
        if self.client is not None:
            self.client.close()
        logger.info("edge {} for cluster {} stopped", self.edge_id, self.cluster_id)

    async def __aenter__(self) -> Edge:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


async def run_edge(config: EdgeConfig) -> int:
    """Run ``navigator edge`` until SIGTERM/SIGINT; returns the exit code (``--once`` is ``edge.once``)."""
    edge = Edge(config)
    metrics_server = metrics.serve_metrics(config.metrics)
    await edge.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    stopped = asyncio.create_task(stop.wait())
    failed = asyncio.create_task(edge.wait_failed())
    try:
        done, _ = await asyncio.wait({stopped, failed}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        failed.cancel()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
    if stopped in done:
        logger.info("shutting down: finishing the in-flight send, then closing the stream")
    await edge.stop(timeout=5.0)
    if metrics_server is not None:
        metrics_server.close()
    if failed in done:
        return EXIT_REJECTED if isinstance(failed.result(), GaveUp) else EXIT_FAILURE
    return EXIT_OK
