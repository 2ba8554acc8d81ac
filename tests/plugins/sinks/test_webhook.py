"""The webhook sink against a real local HTTP server: batching, retries, bounded queue, flush on close."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from navigator_plugins.sinks.webhook import WebhookSink, create

from navigator.resource import Change, ChangeType
from navigator.testing.waiting import until


class Receiver:
    """Records POST bodies; answers with queued status codes (then 200); can hold requests back."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.statuses: list[int] = []
        self.attempts = 0
        self.gate = threading.Event()
        self.gate.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.gate.wait(10)
                receiver.attempts += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.batches.append(orjson.loads(body)["changes"])
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def changes(n: int, start: int = 0) -> list[Change]:
    return [
        Change("east", "pods", "default", f"p{i}", f"uid-{i}", ChangeType.ADDED, None, "1")
        for i in range(start, start + n)
    ]


async def test_batches_by_size_and_flush_interval(receiver: Receiver) -> None:
    sink = create({"url": receiver.url, "batch_size": 3, "flush_interval": "200ms"})
    await sink.send(changes(7))
    await until(lambda: sum(map(len, receiver.batches)) == 7, "7 changes delivered")
    assert [len(b) for b in receiver.batches] == [3, 3, 1]
    first = receiver.batches[0][0]
    assert first == {
        "cluster": "east", "kind": "pods", "namespace": "default", "name": "p0", "uid": "uid-0",
        "type": "ADDED", "old_resource_version": None, "new_resource_version": "1",
        "applied_at": None, "observed_at": None, "changed_fields": [],
    }  # fmt: skip
    await sink.close()
    assert isinstance(sink, WebhookSink) and (sink.sent, sink.dropped, sink.failed) == (7, 0, 0)


async def test_retries_with_backoff_until_delivered(receiver: Receiver) -> None:
    receiver.statuses = [503, 500, 429]
    sink = create({"url": receiver.url, "flush_interval": 0, "backoff": "10ms", "retries": 5})
    await sink.send(changes(2))
    await sink.close()
    assert receiver.attempts == 4
    assert [len(b) for b in receiver.batches] == [2]
    assert isinstance(sink, WebhookSink) and (sink.sent, sink.failed) == (2, 0)


class Sleeps:
    """Records the waits between tries and yields instead of sleeping them (the waits are under test)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


async def failing_waits(receiver: Receiver, seed: int, **options: Any) -> list[float]:
    """The waits of a sink whose endpoint fails every try, with jitter from ``random.Random(seed)``."""
    receiver.statuses = [503] * 100
    sleeps = Sleeps()
    sink = WebhookSink(receiver.url, flush_interval=0, rng=random.Random(seed), sleep=sleeps, **options)
    await sink.send(changes(1))
    await sink.close()
    assert receiver.attempts == options["retries"] + 1 and sink.failed == 1
    return sleeps.waits


async def test_retry_waits_grow_exponentially_with_bounded_jitter_up_to_max_backoff(receiver: Receiver) -> None:
    waits = await failing_waits(receiver, 7, retries=8, backoff=0.5, max_backoff=10.0)
    assert len(waits) == 8  # one wait before each retry
    for n, wait in enumerate(waits):
        base = min(10.0, 0.5 * 2**n)
        assert base * 0.8 <= wait <= min(10.0, base * 1.2), (n, wait)
    assert waits[:5] == sorted(waits[:5])  # ±20 % never reorders a doubling
    assert all(w >= 8.0 for w in waits[5:])  # at the cap, still jittered below it
    assert len({round(w, 9) for w in waits}) == len(waits)  # randomised, not lockstep


async def test_retry_jitter_follows_the_rng(receiver: Receiver) -> None:
    first = await failing_waits(receiver, 1, retries=3, backoff=1.0, max_backoff=60.0)
    receiver.attempts = 0
    again = await failing_waits(receiver, 1, retries=3, backoff=1.0, max_backoff=60.0)
    receiver.attempts = 0
    other = await failing_waits(receiver, 2, retries=3, backoff=1.0, max_backoff=60.0)
    assert first == again and first != other


async def test_each_batch_starts_its_backoff_afresh(receiver: Receiver) -> None:
    receiver.statuses = [500, 500, 200, 500, 200]
    sleeps = Sleeps()
    sink = WebhookSink(receiver.url, batch_size=1, flush_interval=0, backoff=1.0, rng=random.Random(3), sleep=sleeps)
    await sink.send(changes(2))
    await sink.close()
    assert (sink.sent, sink.failed, receiver.attempts) == (2, 0, 5)
    first_batch, second_batch = sleeps.waits[:2], sleeps.waits[2:]
    assert 0.8 <= first_batch[0] <= 1.2 and 1.6 <= first_batch[1] <= 2.4
    assert len(second_batch) == 1 and 0.8 <= second_batch[0] <= 1.2


async def test_gives_up_after_retries_and_on_client_errors(receiver: Receiver) -> None:
    receiver.statuses = [500, 500, 500, 400]
    sink = create({"url": receiver.url, "flush_interval": 0, "backoff": "1ms", "retries": 2, "batch_size": 2})
    await sink.send(changes(2))
    await until(lambda: receiver.attempts == 3, "3 attempts")
    await sink.send(changes(2, start=2))  # answered 400: not retried
    await sink.close()
    assert receiver.attempts == 4 and receiver.batches == []
    assert isinstance(sink, WebhookSink) and (sink.sent, sink.failed) == (0, 4)


async def test_a_full_queue_drops_and_counts(receiver: Receiver, capfd: pytest.CaptureFixture[str]) -> None:
    receiver.gate.clear()  # the endpoint hangs: nothing drains
    sink = create({"url": receiver.url, "max_queue": 5, "batch_size": 2, "flush_interval": 0})
    assert isinstance(sink, WebhookSink)
    await sink.send(changes(2))
    await until(lambda: len(sink._queue) == 0, "the first batch taken")  # the first batch is in flight, held by the gate
    await sink.send(changes(10, start=2))
    assert sink.dropped == 5
    receiver.gate.set()
    await sink.close()
    assert (sink.sent, sink.dropped) == (7, 5)
    assert sum(map(len, receiver.batches)) == 7


async def test_an_unreachable_endpoint_never_blocks_send() -> None:
    sink = create({"url": "http://127.0.0.1:9/", "retries": 1, "backoff": "1ms", "close_timeout": "2s"})
    assert isinstance(sink, WebhookSink)
    await asyncio.wait_for(sink.send(changes(1000)), 0.5)
    await sink.close()
    assert sink.failed == 1000 and sink.sent == 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "url: expected an http"),
        ({"url": "ftp://x"}, "url: expected an http"),
        ({"url": "http://x", "batch_size": 0}, "batch_size"),
        ({"url": "http://x", "flush_interval": "soon"}, "flush_interval"),
        ({"url": "http://x", "bogus": 1}, "unknown webhook sink option bogus"),
        ({"url": "http://x", "backoff": "1m"}, r"max_backoff \(30.0s\) must not be below backoff \(60.0s\)"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create(options)
