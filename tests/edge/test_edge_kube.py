"""Raw Kubernetes access through the official client: paging, 410 restarts, auth, failures, watches."""

from __future__ import annotations

import asyncio
import math
import threading
from pathlib import Path
from typing import Any

import pytest
from navigator_plugins.collectors import pods, services

from navigator.config.edge import KubernetesSection
from navigator.edge.collect import KindCollector
from navigator.edge.kube import KubeApiError, KubeClient, WatchStop, build_api_client
from navigator.edge.records import unpack
from navigator.errors import ConfigError
from navigator.kubesim import KubeSim, kubeconfig

from .conftest import PROTOBUF, kube_section


def test_lists_are_paged_with_limit_and_continue(kubesim: KubeSim, kube_client: KubeClient) -> None:
    pages: list[int] = []
    collector = KindCollector(
        pods.COLLECTOR, kube_client, kube_section(kubesim, page_size=7), PROTOBUF,
        progress=lambda k, n: pages.append(n),
    )
    items, _, rv, size, skipped = collector.list_all()
    resources = [unpack(i, PROTOBUF) for i in items]
    total = kubesim.count("pods")
    assert len(pages) == math.ceil(total / 7) and pages[-1] == total
    assert sorted(r.name for r in resources) == sorted(p["metadata"]["name"] for p in kubesim.list("pods"))
    assert rv == kubesim.resource_version and size > 0 and skipped == 0


def test_expired_continue_token_restarts_the_list(kubesim: KubeSim, kube_client: KubeClient) -> None:
    calls: list[int] = []

    def disturb(kind: str, listed: int) -> None:
        calls.append(listed)
        if len(calls) == 1:  # after the first page: a change, then compaction expires the token (410)
            kubesim.delete("pods", *_first_pod(kubesim))
            kubesim.compact()

    collector = KindCollector(
        pods.COLLECTOR, kube_client, kube_section(kubesim, page_size=10), PROTOBUF, progress=disturb
    )
    items, _, _, _, _ = collector.list_all()
    resources = [unpack(i, PROTOBUF) for i in items]
    assert calls[0] == 10 and calls[1] == 10  # the list started again from the first page
    assert sorted(r.name for r in resources) == sorted(p["metadata"]["name"] for p in kubesim.list("pods"))


def _first_pod(sim: KubeSim) -> tuple[str, str]:
    pod = sim.list("pods")[0]["metadata"]
    return pod["namespace"], pod["name"]


def test_bearer_token_from_the_kubeconfig_is_used(kubesim_factory: Any, tmp_path: Path) -> None:
    sim = kubesim_factory(pods=5, token="s3cret")
    client = KubeClient.from_config(kube_section(sim))
    assert len(client.list_page("/api/v1/pods", limit=100).items) == 5
    wrong = kubeconfig.write(tmp_path / "wrong", kubeconfig.build(sim.url, token="not-it"))
    other = KubeClient.from_config(KubernetesSection(kubeconfig=wrong))
    with pytest.raises(KubeApiError) as err:
        other.list_page("/api/v1/pods", limit=100)
    assert err.value.status == 401


def test_unreachable_api_server_is_a_clear_error(kubesim: KubeSim) -> None:
    section = kube_section(kubesim)
    client = KubeClient.from_config(section)
    kubesim.stop()
    with pytest.raises(KubeApiError) as err:
        client.list_page("/api/v1/pods", limit=10)
    assert err.value.status == 0
    assert "cannot reach the Kubernetes API" in str(err.value)


def test_kubeconfig_problems_are_config_errors(tmp_path: Path, kubesim: KubeSim) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        build_api_client(KubernetesSection(kubeconfig=tmp_path / "missing"))
    with pytest.raises(ConfigError, match="nope"):
        build_api_client(KubernetesSection(kubeconfig=kubesim.kubeconfig_path, context="nope"))


def test_connection_dropped_mid_list_is_retried(kubesim: KubeSim, kube_client: KubeClient) -> None:
    kubesim.faults.drop_mid_list("pods", times=1)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    collector = KindCollector(pods.COLLECTOR, kube_client, kube_section(kubesim), PROTOBUF, sleep=sleep)
    result = asyncio.run(collector.collect())
    assert result.ok and len(result.resources) == kubesim.count("pods")
    assert len(waits) == 1


def test_watch_streams_changes_and_reports_410(kubesim: KubeSim, kube_client: KubeClient) -> None:
    start = kubesim.resource_version
    ns, name = _first_pod(kubesim)
    kubesim.patch("pods", ns, name, {"metadata": {"labels": {"tier": "gold"}}})
    kubesim.delete("pods", ns, name)
    stop = WatchStop()
    events = []
    for event in kube_client.watch("/api/v1/pods", start, stop=stop, timeout_seconds=5):
        events.append(event)
        if len(events) == 2:
            break
    assert [e.type for e in events] == ["MODIFIED", "DELETED"]
    assert events[0].object["metadata"]["labels"]["tier"] == "gold"

    kubesim.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}})
    kubesim.compact()
    with pytest.raises(KubeApiError) as err:
        list(kube_client.watch("/api/v1/pods", start, timeout_seconds=5))
    assert err.value.expired


def test_a_blocked_watch_stops_at_once(kubesim: KubeSim, kube_client: KubeClient) -> None:
    stop = WatchStop()
    seen: list[str] = []

    def run() -> None:
        for event in kube_client.watch("/api/v1/services", kubesim.resource_version, stop=stop, timeout_seconds=60):
            seen.append(event.type)

    thread = threading.Thread(target=run)
    thread.start()
    threading.Event().wait(0.2)
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and seen == []


def test_label_selector_is_applied_server_side(kubesim: KubeSim, kube_client: KubeClient) -> None:
    svc = kubesim.list("services")[0]["metadata"]
    selector = f"app={svc['labels']['app']}"
    page = kube_client.list_page("/api/v1/services", limit=100, label_selector=selector)
    assert [i["metadata"]["name"] for i in page.items] == [
        s["metadata"]["name"] for s in kubesim.list("services", label_selector=selector)
    ]
    assert services.COLLECTOR.collection_path == "/api/v1/services"


def test_https_api_server_with_the_kubeconfig_ca(kubesim_factory: Any) -> None:
    sim = kubesim_factory(pods=3, tls=True, token="t0k")
    client = KubeClient.from_config(kube_section(sim))
    assert client.host.startswith("https://")
    assert len(client.list_page("/api/v1/pods", limit=10).items) == 3
