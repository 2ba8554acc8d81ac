"""The ``webhook`` sink: change events POSTed as JSON batches, retried with backoff, never blocking the manager.

Options: ``url`` (required), ``batch_size`` (500), ``flush_interval`` (``1s``:
a partial batch waits at most this long), ``timeout`` (``10s`` per request),
``retries`` (5, after the first try), ``backoff`` (``0.5s``, doubling up to
``max_backoff``, ``30s``; each wait randomised by ±20 % so sinks of several
managers do not retry in step), ``max_queue`` (10000 events), ``headers``
(extra request headers).

The body is ``{"changes": [{cluster, kind, namespace, name, uid, type,
old_resource_version, new_resource_version}, ...]}``. When the queue is full,
new events are dropped and counted (``dropped``), with a warning in the log;
a batch that still fails after every retry is counted in ``failed``.
``close()`` sends what is queued, within ``close_timeout`` (``10s``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx
import orjson
from loguru import logger

from navigator.plugin import Backoff, BackoffPolicy, Change, Sink, SinkPlugin, hookimpl, parse_duration

DEFAULTS: dict[str, Any] = {
    "url": None,
    "batch_size": 500,
    "flush_interval": 1.0,
    "timeout": 10.0,
    "retries": 5,
    "backoff": 0.5,
    "max_backoff": 30.0,
    "max_queue": 10_000,
    "headers": {},
    "close_timeout": 10.0,
}
#: How often a run of drops is reported in the log.
DROP_REPORT_INTERVAL = 10.0


class WebhookSink:
    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_queue: int = 10_000,
        headers: Mapping[str, str] | None = None,
        close_timeout: float = 10.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """``rng`` seeds the jitter and ``sleep`` waits between tries (both replaceable for tests)."""
        self.url = url
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.retries = retries
        self.backoff = BackoffPolicy(initial=backoff, max=max_backoff)
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self.max_queue = max_queue
        self.close_timeout = close_timeout
        self.timeout = timeout
        self.headers = {"content-type": "application/json", **(headers or {})}
        #: Events delivered, dropped because the queue was full, and lost after all retries.
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._queue: deque[dict[str, Any]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._closing = False
        self._drops_reported = 0
        self._last_drop_report = 0.0

    async def send(self, changes: Sequence[Change]) -> None:
        room = self.max_queue - len(self._queue)
        self._queue.extend(c.as_dict() for c in changes[: max(room, 0)])
        if len(changes) > room:
            self.dropped += len(changes) - max(room, 0)
            self._report_drops()
        if self._task is None:
            self._wake = asyncio.Event()
            self._client = httpx.AsyncClient(timeout=self.timeout)
            self._task = asyncio.create_task(self._run(), name="webhook-sink")
        assert self._wake is not None
        self._wake.set()

    def _report_drops(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.dropped > self._drops_reported and (force or now - self._last_drop_report >= DROP_REPORT_INTERVAL):
            logger.warning(
                "webhook sink {}: queue full (max_queue {}), dropped {} change events so far",
                self.url,
                self.max_queue,
                self.dropped,
            )
            self._drops_reported, self._last_drop_report = self.dropped, now

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            # A partial batch waits up to flush_interval for company.
            deadline = time.monotonic() + self.flush_interval
            while len(self._queue) < self.batch_size and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    break
            batch = [self._queue.popleft() for _ in range(min(self.batch_size, len(self._queue)))]
            await self._post(batch)

    async def _post(self, batch: list[dict[str, Any]]) -> None:
        assert self._client is not None
        body = orjson.dumps({"changes": batch})
        problem = ""
        backoff = Backoff(self.backoff, self._rng)
        for attempt in range(self.retries + 1):
            if attempt:
                await self._sleep(backoff.next())
            try:
                response = await self._client.post(self.url, content=body, headers=self.headers)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                self.sent += len(batch)
                return
            problem = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                break  # the endpoint refuses this batch: retrying will not help
        self.failed += len(batch)
        logger.error("webhook sink {}: gave up on {} change events: {}", self.url, len(batch), problem)

    async def close(self) -> None:
        self._closing = True
        if self._task is not None and self._wake is not None:
            self._wake.set()
            try:
                await asyncio.wait_for(self._task, self.close_timeout)
            except TimeoutError:
                logger.error("webhook sink {}: {} change events not sent at shutdown", self.url, len(self._queue))
                self.failed += len(self._queue)
                self._queue.clear()
        if self._client is not None:
            await self._client.aclose()
        self._report_drops(force=True)


def create(options: Mapping[str, Any]) -> Sink:
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown webhook sink option {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    merged = {**DEFAULTS, **options}
    url = merged.pop("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"url: expected an http:// or https:// URL, got {url!r}")
    for key in ("flush_interval", "timeout", "backoff", "max_backoff", "close_timeout"):
        try:
            merged[key] = parse_duration(merged[key])
        except ValueError as exc:
            raise ValueError(f"{key}: {exc}") from None
    if merged["max_backoff"] < merged["backoff"]:
        raise ValueError(f"max_backoff ({merged['max_backoff']}s) must not be below backoff ({merged['backoff']}s)")
    for key in ("batch_size", "max_queue"):
        if not isinstance(merged[key], int) or merged[key] < 1:
            raise ValueError(f"{key}: expected a positive integer, got {merged[key]!r}")
    if not isinstance(merged["retries"], int) or merged["retries"] < 0:
        raise ValueError(f"retries: expected a non-negative integer, got {merged['retries']!r}")
    if not isinstance(merged["headers"], Mapping):
        raise ValueError("headers: expected a mapping of header names to values")
    return WebhookSink(url, **merged)


@hookimpl
def navigator_sinks() -> Iterable[SinkPlugin]:
    return [SinkPlugin(name="webhook", create=create, description="batched JSON POSTs with retry")]
