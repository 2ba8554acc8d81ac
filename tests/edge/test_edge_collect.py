"""Per-kind collection: retries with backoff, Retry-After, final errors, the cached fallback."""

from __future__ import annotations

from typing import Any

from navigator_plugins.collectors import pods, services

from navigator.edge.collect import KindCollector
from navigator.edge.kube import KubeClient
from navigator.interfaces import Collector
from navigator.kubesim import KubeSim

from .conftest import PROTOBUF, kube_section


class Sleeps:
    """Records the waits instead of sleeping them (the waits are what is under test)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def collector(sim: KubeSim, client: KubeClient, sleeps: Sleeps, **kube: Any) -> KindCollector:
    return KindCollector(pods.COLLECTOR, client, kube_section(sim, **kube), PROTOBUF, sleep=sleeps)


async def test_retries_on_500_then_succeeds(kubesim: KubeSim, kube_client: KubeClient) -> None:
    kubesim.faults.set("pods", 500, times=2)
    sleeps = Sleeps()
    result = await collector(kubesim, kube_client, sleeps, retry_attempts=5, retry={"initial": 0.5, "max": 10,
                                                                                    "jitter": 0}).collect()
    assert result.ok and len(result.resources) == kubesim.count("pods")
    assert sleeps.waits == [0.5, 1.0]  # exponential backoff between the three attempts


async def test_429_waits_as_long_as_retry_after_says(kubesim: KubeSim, kube_client: KubeClient) -> None:
    kubesim.faults.set("pods", 429, times=1)  # the simulator sends Retry-After: 1
    sleeps = Sleeps()
    result = await collector(kubesim, kube_client, sleeps, retry={"initial": 0.01, "max": 0.05}).collect()
    assert result.ok
    assert sleeps.waits == [1.0]


async def test_gives_up_after_retry_attempts_with_the_error(kubesim: KubeSim, kube_client: KubeClient) -> None:
    kubesim.faults.set("pods", 503)
    sleeps = Sleeps()
    result = await collector(kubesim, kube_client, sleeps, retry_attempts=4).collect()
    assert not result.ok and not result.cached and result.resources == []
    assert result.error is not None
    assert (result.error.http_status, result.error.attempts) == (503, 4)
    assert "unable to handle the request" in result.error.message
    assert len(sleeps.waits) == 3


async def test_forbidden_is_not_retried(kubesim: KubeSim, kube_client: KubeClient) -> None:
    kubesim.faults.set("pods", 403)
    sleeps = Sleeps()
    result = await collector(kubesim, kube_client, sleeps).collect()
    assert result.error is not None and result.error.http_status == 403 and result.error.attempts == 1
    assert sleeps.waits == []


async def test_failure_after_success_sends_the_cached_collection(kubesim: KubeSim, kube_client: KubeClient) -> None:
    kc = collector(kubesim, kube_client, Sleeps())
    first = await kc.collect()
    assert first.ok and first.changes is None
    kubesim.faults.set("pods", 500)
    second = await kc.collect()
    assert not second.ok and second.cached
    assert second.resources == first.resources
    assert second.error is not None and second.error.http_status == 500
    kubesim.faults.clear()
    third = await kc.collect()
    assert third.ok and not third.cached and third.changes == 0


async def test_changes_counts_added_modified_and_deleted(kubesim: KubeSim, kube_client: KubeClient) -> None:
    kc = KindCollector(services.COLLECTOR, kube_client, kube_section(kubesim), PROTOBUF)
    await kc.collect()
    first, second = kubesim.list("services")[:2]
    kubesim.patch("services", first["metadata"]["namespace"], first["metadata"]["name"],
                  {"metadata": {"labels": {"x": "y"}}})
    kubesim.delete("services", second["metadata"]["namespace"], second["metadata"]["name"])
    kubesim.create({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "new", "namespace": "default"},
                    "spec": {"ports": [{"port": 80}]}})
    result = await kc.collect()
    assert result.changes == 3


async def test_an_object_the_collector_cannot_read_is_skipped(kubesim: KubeSim, kube_client: KubeClient) -> None:
    seen: list[str] = []

    def picky(obj: dict[str, Any]) -> Any:
        seen.append(obj["metadata"]["name"])
        if len(seen) == 2:
            raise ValueError("cannot read this one")
        resource = services.COLLECTOR.convert(obj)
        if len(seen) == 3:
            resource.uid = ""  # the manager would refuse the whole state for it
        return resource

    kc = KindCollector(Collector("services", "v1", "services", picky), kube_client, kube_section(kubesim), PROTOBUF)
    result = await kc.collect()
    assert result.ok and result.skipped == 2
    assert sorted(r.name for r in result.resources) == sorted(seen[:1] + seen[3:])
