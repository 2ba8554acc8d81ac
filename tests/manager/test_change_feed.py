"""The change feed on its own: filters, the bounded buffer that cuts a slow watcher off, publish never waiting."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from navigator.manager.change_feed import (
    BATCH,
    ChangeFeed,
    Item,
    Subscription,
    SubscriptionClosed,
    UnsureDeletion,
    WatchFilter,
)
from navigator.resource import Change, ChangeType, Resource
from navigator.selectors import parse_selector

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def change(
    type_: ChangeType,
    name: str,
    *,
    cluster: str = "east",
    kind: str = "pods",
    namespace: str = "shop",
    labels: dict[str, str] | None = None,
    rv: str = "1",
) -> Change:
    resource = None
    if type_ is not ChangeType.DELETED:
        resource = Resource(kind, namespace, name, f"uid-{name}", rv, dict(labels or {}), {"phase": "Running"})
    return Change(
        cluster, kind, namespace, name, f"uid-{name}", type_, None if type_ is ChangeType.ADDED else "0",
        None if type_ is ChangeType.DELETED else rv, applied_at=NOW, observed_at=NOW, resource=resource,
    )  # fmt: skip


def added(name: str, **kwargs: object) -> Change:
    return change(ChangeType.ADDED, name, **kwargs)  # type: ignore[arg-type]


def modified(name: str, **kwargs: object) -> Change:
    return change(ChangeType.MODIFIED, name, **kwargs)  # type: ignore[arg-type]


def deleted(name: str, **kwargs: object) -> Change:
    return change(ChangeType.DELETED, name, **kwargs)  # type: ignore[arg-type]


async def take(sub: Subscription) -> list[Item]:
    """What the subscription has ready now (it must have something)."""
    return await asyncio.wait_for(anext(sub), 10)


def names(items: list[Item]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        c = item.change if isinstance(item, UnsureDeletion) else item
        out.append((("unsure " if isinstance(item, UnsureDeletion) else "") + str(c.type), c.name))
    return out


async def test_a_subscriber_gets_what_is_published_after_it_subscribed_in_order() -> None:
    feed = ChangeFeed()
    feed.publish([added("early")])
    sub = feed.subscribe(WatchFilter(), buffer=100)
    feed.publish([added("a"), modified("b")])
    feed.publish([deleted("c")])
    assert names(await take(sub)) == [("ADDED", "a"), ("MODIFIED", "b"), ("DELETED", "c")]
    assert sub.pending == 0


async def test_filters_on_cluster_kind_namespace_and_name() -> None:
    feed = ChangeFeed()
    sub = feed.subscribe(WatchFilter(kind="pods", cluster="east", namespace="shop", name="web"), buffer=100)
    feed.publish([
        added("web"), added("web", cluster="west"), added("web", kind="services"), added("web", namespace="kube"),
        added("db"), deleted("web"),
    ])  # fmt: skip
    assert names(await take(sub)) == [("ADDED", "web"), ("DELETED", "web")]


async def test_a_selector_matches_the_labels_after_the_change() -> None:
    feed = ChangeFeed()
    sub = feed.subscribe(WatchFilter(selector=parse_selector("app=web")), buffer=100)
    feed.publish([
        added("a", labels={"app": "web"}),
        added("b", labels={"app": "db"}),
        modified("b", labels={"app": "web"}),   # now it matches
        modified("a", labels={"app": "gone"}),  # now it does not
    ])  # fmt: skip
    assert names(await take(sub)) == [("ADDED", "a"), ("MODIFIED", "b")]


async def test_deletions_under_a_selector_known_ones_delivered_unknown_ones_left_to_the_consumer() -> None:
    feed = ChangeFeed()
    sub = feed.subscribe(WatchFilter(namespace="shop", selector=parse_selector("app=web")), buffer=100)
    feed.publish([added("seen", labels={"app": "web"}), added("left", labels={"app": "web"})])
    feed.publish([modified("left", labels={"app": "db"})])
    feed.publish([deleted("seen"), deleted("left"), deleted("never-seen"), deleted("elsewhere", namespace="kube")])
    items = await take(sub)
    assert names(items) == [
        ("ADDED", "seen"), ("ADDED", "left"),
        ("DELETED", "seen"),            # its last labels matched: delivered
        ("unsure DELETED", "left"),     # not known to match: the consumer asks the history
        ("unsure DELETED", "never-seen"),
    ]  # fmt: skip


async def test_a_subscriber_past_its_buffer_is_cut_off_and_its_queue_dropped() -> None:
    feed = ChangeFeed()
    slow = feed.subscribe(WatchFilter(), buffer=10)
    narrow = feed.subscribe(WatchFilter(name="x-3"), buffer=10)
    for i in range(6):  # 10 pending is the limit, 12 would be past it
        feed.publish([added(f"x-{i}"), added(f"y-{i}")])
        assert slow.pending <= 10 and slow.peak_pending <= 10
    assert slow.closed and slow.pending == 0 and slow.peak_pending == 10
    assert len(feed) == 1  # the narrow one stays
    with pytest.raises(SubscriptionClosed) as ended:
        await take(slow)
    assert ended.value.code == "RESOURCE_EXHAUSTED"
    assert "10 changes" in ended.value.message and "watch.buffer" in ended.value.message
    assert "narrow" in ended.value.message and "read faster" in ended.value.message
    assert names(await take(narrow)) == [("ADDED", "x-3")]


async def test_one_apply_bigger_than_the_buffer_cuts_off_at_once() -> None:
    feed = ChangeFeed()
    sub = feed.subscribe(WatchFilter(), buffer=3)
    feed.publish([added(f"p-{i}") for i in range(4)])
    assert sub.closed and sub.peak_pending == 0


async def test_a_reader_that_keeps_up_is_never_cut_off_and_batches_stay_bounded() -> None:
    feed = ChangeFeed()
    sub = feed.subscribe(WatchFilter(), buffer=2 * BATCH)
    seen = 0
    for round_ in range(20):
        feed.publish([added(f"p-{round_}-{i}") for i in range(BATCH + 7)])
        while sub.pending:
            batch = await take(sub)
            assert len(batch) <= BATCH
            seen += len(batch)
    assert seen == 20 * (BATCH + 7) and not sub.closed


async def test_publish_never_waits_for_a_reader_and_returns_at_once() -> None:
    """Nothing reads; publish is a plain call (no await), and a stalled reader only loses its subscription."""
    feed = ChangeFeed()
    stalled = feed.subscribe(WatchFilter(), buffer=100)
    for i in range(1000):
        feed.publish([added(f"p-{i}")])
    assert stalled.closed and stalled.peak_pending == 100 and len(feed) == 0


async def test_a_waiting_reader_wakes_up_on_publish_and_on_cut_off() -> None:
    feed = ChangeFeed()
    sub = feed.subscribe(WatchFilter(), buffer=1)
    reader = asyncio.create_task(anext(sub))
    await asyncio.sleep(0)
    feed.publish([added("a")])
    assert names(await asyncio.wait_for(reader, 10)) == [("ADDED", "a")]
    reader = asyncio.create_task(anext(sub))
    await asyncio.sleep(0)
    feed.publish([added("b"), added("c")])
    with pytest.raises(SubscriptionClosed):
        await asyncio.wait_for(reader, 10)


async def test_close_ends_readers_with_unavailable_and_refuses_new_subscribers() -> None:
    feed = ChangeFeed()
    sub = feed.subscribe(WatchFilter(), buffer=10)
    await feed.close()
    with pytest.raises(SubscriptionClosed) as ended:
        await take(sub)
    assert ended.value.code == "UNAVAILABLE"
    late = feed.subscribe(WatchFilter(), buffer=10)
    assert late.closed and len(feed) == 0


async def test_a_watcher_that_leaves_ends_its_iteration_quietly() -> None:
    feed = ChangeFeed()
    sub = feed.subscribe(WatchFilter(), buffer=10)
    feed.publish([added("a")])
    sub.close()
    assert len(feed) == 0 and sub.pending == 0
    with pytest.raises(StopAsyncIteration):
        await anext(sub)
    feed.publish([added("b")])  # nobody left: nothing happens


async def test_the_feed_is_a_sink() -> None:
    from navigator.interfaces import Sink

    feed = ChangeFeed()
    assert isinstance(feed, Sink)
    sub = feed.subscribe(WatchFilter(), buffer=10)
    await feed.send([added("a")])
    assert names(await take(sub)) == [("ADDED", "a")]
