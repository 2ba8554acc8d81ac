"""Silent watch death: a watch that stays open and delivers nothing, the fault a client's idle timeout is for.

Also latency limited to some verbs, so a fault can slow a client's lists and watches
without slowing the writes that change the cluster meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest

from navigator.kubesim import KubeSim

pytestmark = pytest.mark.timeout(60)


def _events(sim: KubeSim, rv: str) -> Iterator[dict[str, object]]:
    """Watch pods from ``rv`` with bookmarks; yields events until the read times out (2 s)."""
    params = {"watch": "1", "resourceVersion": rv, "allowWatchBookmarks": "true"}
    with httpx.stream("GET", f"{sim.url}/api/v1/pods", params=params, timeout=2.0) as response:
        assert response.status_code == 200
        try:
            for line in response.iter_lines():
                if line:
                    yield orjson.loads(line)
        except httpx.ReadTimeout:
            return


def _relabel(sim: KubeSim, value: str) -> str:
    pod = httpx.get(f"{sim.url}/api/v1/pods").json()["items"][0]["metadata"]
    body = orjson.dumps({"metadata": {"labels": {"silent": value}}})
    response = httpx.patch(
        f"{sim.url}/api/v1/namespaces/{pod['namespace']}/pods/{pod['name']}",
        content=body,
        headers={"Content-Type": "application/merge-patch+json"},
    )
    response.raise_for_status()
    return str(response.json()["metadata"]["resourceVersion"])


@pytest.fixture
def quick_sim(make_sim: Callable[..., KubeSim]) -> KubeSim:
    """Bookmarks every 0.2 s: a live watch is never quiet for the 2 s the reads wait."""
    return make_sim(pods=5, namespaces=1, seed=3, bookmark_interval=0.2)


def test_a_silenced_watch_sends_nothing_more_and_stays_dead_after_the_fault_is_cleared(quick_sim: KubeSim) -> None:
    start = httpx.get(f"{quick_sim.url}/api/v1/pods").json()["metadata"]["resourceVersion"]
    watch = _events(quick_sim, start)
    assert next(watch)["type"] == "BOOKMARK"  # alive
    quick_sim.faults.silence_watches("pods")
    assert quick_sim.faults.silenced("pods", 0) and not quick_sim.faults.silenced("services", 0)
    changed = _relabel(quick_sim, "a")
    quick_sim.faults.clear()
    seen = [event for event in watch if event["type"] != "BOOKMARK"]
    assert seen == []  # the change never came, and the stream ended only by the client's read timeout
    fresh = next(e for e in _events(quick_sim, start) if e["type"] == "MODIFIED")
    assert fresh["object"]["metadata"]["resourceVersion"] == changed  # type: ignore[index]


def test_a_watch_opened_while_silenced_sends_not_even_its_initial_events(quick_sim: KubeSim) -> None:
    quick_sim.faults.apply({"kind": "*", "silent_watches": True})
    assert quick_sim.faults.snapshot()[0]["silent_watches"] is True
    assert list(_events(quick_sim, "0")) == []
    quick_sim.faults.apply({"kind": "*", "silent_watches": False})
    assert any(e["type"] == "ADDED" for e in _events(quick_sim, "0"))


def test_latency_can_spare_the_writes(quick_sim: KubeSim) -> None:
    quick_sim.faults.latency("*", 30.0, verbs=["list", "watch"])
    write = httpx.patch(
        f"{quick_sim.url}/api/v1/namespaces/default/pods/nonexistent",
        content=b"{}",
        headers={"Content-Type": "application/merge-patch+json"},
        timeout=10,  # held for the 30 s of latency, it would fail here
    )
    assert write.status_code == 404
    assert quick_sim.faults.snapshot()[0]["latency_verbs"] == ["list", "watch"]
