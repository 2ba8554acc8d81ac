"""The bounded outgoing buffer: what happens when the stream cannot keep up."""

from __future__ import annotations

import asyncio

import pytest

from navigator.edge.messages import Delta, FullSnapshot
from navigator.edge.outbox import Outbox


def delta(n: int) -> Delta:
    return Delta(timestamp=float(n))


async def test_drop_oldest_keeps_the_newest_and_asks_for_a_resync() -> None:
    lost: list[int] = []
    box = Outbox(3, "drop_oldest", on_lost=lambda: lost.append(1))
    for i in range(5):
        await box.put(delta(i))
    assert len(box) == 3 and len(lost) == 2
    got = [await box.get() for _ in range(3)]
    assert [d.timestamp for d in got] == [2.0, 3.0, 4.0]


async def test_block_makes_the_producer_wait_for_the_consumer() -> None:
    box = Outbox(2, "block")
    await box.put(delta(0))
    await box.put(delta(1))
    third = asyncio.create_task(box.put(delta(2)))
    await asyncio.sleep(0.05)
    assert not third.done() and len(box) == 2
    first = await box.get()
    await asyncio.wait_for(third, 1)
    assert first.timestamp == 0.0
    assert [(await box.get()).timestamp for _ in range(2)] == [1.0, 2.0]


@pytest.mark.parametrize("when_full", ["drop_oldest", "block"])
async def test_a_full_snapshot_supersedes_everything_queued(when_full: str) -> None:
    lost: list[int] = []
    box = Outbox(2, when_full, on_lost=lambda: lost.append(1))  # type: ignore[arg-type]
    await box.put(delta(0))
    await box.put(delta(1))
    full = FullSnapshot({})
    await asyncio.wait_for(box.put(full), 1)
    assert len(box) == 1 and not lost  # replaced by the FULL, not lost
    assert await box.get() is full

