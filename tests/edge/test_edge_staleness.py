"""No silent staleness: what the sync loop says when it cannot vouch for its copy, against the simulator.

The API behind a TCP proxy that blackholes it (connections open, nothing gets
through), a watch that breaks while the relist is slow, and the probe itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from navigator.config.edge import EdgeConfig
from navigator.edge.kube import KubeApiError, KubeClient
from navigator.edge.messages import Delta, FullSnapshot, Outgoing
from navigator.kubesim import KubeSim
from navigator.processes import free_port
from navigator.testing.proxy import TcpProxy

from .conftest import running, through

KINDS = ["endpointslices", "pods", "services"]


def quiet(item: Outgoing) -> bool:
    return isinstance(item, Delta) and item.object_count == 0


async def test_a_blackholed_api_is_reported_in_the_next_liveness_delta_and_freshness_stops(
    kubesim: KubeSim, tmp_path: Path, make_config: Callable[..., EdgeConfig]
) -> None:
    host, port = kubesim.url.removeprefix("http://").split(":")
    with TcpProxy(host, int(port)) as proxy:
        config = make_config(
            "127.0.0.1:1",
            kubernetes={"kubeconfig": str(through(proxy, kubesim, tmp_path)), "probe_timeout": 0.5},
            sync={"interval": 0.3, "adaptive": {"enabled": False}},
        )
        async with running(config) as run:
            full = await run.until(lambda i: isinstance(i, FullSnapshot))
            healthy = await run.until(quiet)
            assert isinstance(full, FullSnapshot) and isinstance(healthy, Delta) and not healthy.errors
            assert healthy.timestamp >= full.timestamp

            proxy.blackhole(True)
            down = await run.until(lambda i: quiet(i) and bool(i.errors))  # type: ignore[union-attr]
            assert isinstance(down, Delta)
            assert sorted(e.kind for e in down.errors) == KINDS
            assert all(e.cached and e.failure.http_status == 0 for e in down.errors)
            assert "cannot reach the Kubernetes API" in down.errors[0].failure.message
            # The copy is vouched for as of the last time the API answered, not as of now.
            assert down.timestamp <= run.loop._vouched_at <= down.timestamp + 1e-9  # type: ignore[operator]
            later = await run.until(lambda i: quiet(i) and bool(i.errors))
            assert isinstance(later, Delta) and later.timestamp == down.timestamp
            assert later.errors[0].failure.attempts > down.errors[0].failure.attempts

            proxy.blackhole(False)
            back = await run.until(lambda i: isinstance(i, Delta) and not i.errors and i.timestamp > down.timestamp)
            assert isinstance(back, Delta)
            # The watches were reopened from where they were: a change made now still arrives, without a relist.
            kubesim.create({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "after-the-outage",
                            "namespace": "default"}, "spec": {"containers": [{"name": "c", "image": "x"}]}})  # fmt: skip
            arrived = await run.until(
                lambda i: isinstance(i, FullSnapshot) or any(r.name == "after-the-outage" for r in i.upserts)
            )
            assert isinstance(arrived, Delta)


async def test_a_relist_slower_than_an_interval_still_reports_every_interval(
    kubesim: KubeSim, make_config: Callable[..., EdgeConfig]
) -> None:
    """The pods watch went silent, could not be reopened (410) and the relist takes 3 s: the edge is not
    silent meanwhile, and says why."""
    kubesim.bookmark_interval = 0.2
    config = make_config(
        "127.0.0.1:1", kubernetes={"watch_idle_timeout": 1.0}, sync={"interval": 0.3, "adaptive": {"enabled": False}}
    )
    async with running(config) as run:
        first = await run.until(lambda i: isinstance(i, FullSnapshot))
        await run.until(quiet)
        kubesim.faults.latency("pods", 3.0, verbs=["list"])
        kubesim.faults.set("pods", 410, times=1, verbs=["watch"])
        kubesim.faults.silence_watches("pods")
        reported = await run.until(lambda i: quiet(i) and any(e.kind == "pods" for e in i.errors))  # type: ignore[union-attr]
        assert isinstance(reported, Delta) and [e.kind for e in reported.errors] == ["pods"]
        assert reported.errors[0].failure.message.startswith("relisting: ")
        kubesim.faults.clear()
        again = await run.until(lambda i: isinstance(i, FullSnapshot))
        assert isinstance(again, FullSnapshot) and not again.errors
        assert isinstance(first, FullSnapshot) and again.timestamp > reported.timestamp >= first.timestamp
        healthy = await run.until(quiet)
        assert isinstance(healthy, Delta) and not healthy.errors


def test_the_probe_answers_and_fails_as_the_api_does(kubesim: KubeSim, kube_client: KubeClient) -> None:
    kube_client.probe(2.0)
    kubeconfig = yaml.safe_load(kubesim.kubeconfig_path.read_text())
    closed = free_port()
    for entry in kubeconfig["clusters"]:
        entry["cluster"]["server"] = f"http://127.0.0.1:{closed}"
    from kubernetes import client as k8s_client

    from navigator.edge.kube import _configuration

    configuration = _configuration()
    configuration.host = f"http://127.0.0.1:{closed}"
    nowhere = KubeClient(k8s_client.ApiClient(configuration=configuration))
    try:
        with pytest.raises(KubeApiError) as refused:
            nowhere.probe(1.0)
        assert refused.value.status == 0 and "cannot reach the Kubernetes API" in str(refused.value)
    finally:
        nowhere.close()


async def test_poll_mode_reports_a_blackholed_api_while_its_lists_hang(
    kubesim: KubeSim, tmp_path: Path, make_config: Callable[..., EdgeConfig]
) -> None:
    """The lists wait for an answer that does not come (and retry): the edge still says why, every interval."""
    host, port = kubesim.url.removeprefix("http://").split(":")
    with TcpProxy(host, int(port)) as proxy:
        config = make_config(
            "127.0.0.1:1",
            kubernetes={"kubeconfig": str(through(proxy, kubesim, tmp_path)), "request_timeout": 30, "probe_timeout": 0.5},
            sync={"interval": 0.4, "mode": "poll", "adaptive": {"enabled": False}},
        )
        async with running(config) as run:
            full = await run.until(lambda i: isinstance(i, FullSnapshot))
            proxy.blackhole(True)
            down = await run.until(lambda i: quiet(i) and bool(i.errors))  # type: ignore[union-attr]
            assert isinstance(full, FullSnapshot) and isinstance(down, Delta)
            assert sorted(e.kind for e in down.errors) == KINDS and down.timestamp >= full.timestamp
            assert "no answer to GET /version within 0.5s" in down.errors[0].failure.message
            proxy.blackhole(False)
