"""Edge tests: the Kubernetes simulator, a protocol-speaking gRPC manager double, config helpers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from navigator_plugins.collectors import endpointslices, pods, services
from navigator_plugins.serializers.protobuf import ProtobufSerializer

from navigator.config.edge import EdgeConfig, KubernetesSection
from navigator.edge.collect import KindCollector
from navigator.edge.kube import KubeClient
from navigator.edge.loop import SyncLoop
from navigator.edge.messages import Outgoing
from navigator.edge.outbox import Outbox
from navigator.kubesim import KubeSim
from navigator.testing.edge import edge_config
from navigator.testing.proxy import TcpProxy
from navigator.v1 import sync_pb2

from .fake_manager import FakeManager

PROTOBUF = ProtobufSerializer()


def kube_section(sim: KubeSim, **overrides: Any) -> KubernetesSection:
    """Kubernetes settings for ``sim`` with test-speed retries."""
    values: dict[str, Any] = {
        "kubeconfig": str(sim.kubeconfig_path),
        "context": sim.context,
        "request_timeout": 10,
        "retry_attempts": 3,
        "retry": {"initial": 0.01, "max": 0.05},
    }
    values.update(overrides)
    return KubernetesSection.model_validate(values)


@pytest.fixture
def kube_client(kubesim: KubeSim) -> KubeClient:
    return KubeClient.from_config(kube_section(kubesim))


@pytest.fixture
async def fake_manager() -> AsyncIterator[FakeManager]:
    manager = FakeManager()
    await manager.start()
    yield manager
    await manager.stop()


@pytest.fixture
def make_config(kubesim: KubeSim) -> Callable[..., EdgeConfig]:
    def make(address: str, **overrides: Any) -> EdgeConfig:
        return edge_config(str(kubesim.kubeconfig_path), kubesim.context, address, "sim", **overrides)

    return make


class Running:
    """A sync loop running in the test's event loop, and the queue it fills."""

    def __init__(self, loop: SyncLoop, outbox: Outbox) -> None:
        self.loop = loop
        self.outbox = outbox

    async def next(self, timeout: float = 10.0) -> Outgoing:
        return await asyncio.wait_for(self.outbox.get(), timeout)

    async def until(self, predicate: Callable[[Outgoing], bool], timeout: float = 30.0) -> Outgoing:
        async def scan() -> Outgoing:
            while not predicate(item := await self.outbox.get()):
                pass
            return item

        return await asyncio.wait_for(scan(), timeout)


@contextlib.asynccontextmanager
async def running(config: EdgeConfig) -> AsyncIterator[Running]:
    """The edge's sync loop over the built-in collectors (no stream): what it queues is in ``outbox``."""
    client = KubeClient.from_config(config.kubernetes)
    outbox = Outbox(100)
    collectors = {
        c.name: KindCollector(c, client, config.kubernetes, PROTOBUF)
        for c in (services.COLLECTOR, endpointslices.COLLECTOR, pods.COLLECTOR)
    }
    loop = SyncLoop(config, collectors, client, outbox)
    task = asyncio.create_task(loop.run())
    try:
        yield Running(loop, outbox)
    finally:
        task.cancel()
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        client.close()


def through(proxy: TcpProxy, kubesim: KubeSim, tmp_path: Path) -> Path:
    """A kubeconfig for the simulator that goes through ``proxy``."""
    kubeconfig = yaml.safe_load(kubesim.kubeconfig_path.read_text())
    for entry in kubeconfig["clusters"]:
        entry["cluster"]["server"] = f"http://{proxy.address}"
    path = tmp_path / "through-proxy.kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig))
    return path


def held(kubesim: KubeSim, kinds: tuple[str, ...] = ("services", "endpointslices", "pods")) -> list[sync_pb2.ResourceKey]:
    """What a manager that synced this cluster before holds."""
    return [
        sync_pb2.ResourceKey(
            kind=kind,
            namespace=o["metadata"].get("namespace", ""),
            name=o["metadata"]["name"],
            uid=o["metadata"]["uid"],
            resource_version=o["metadata"]["resourceVersion"],
        )
        for kind in kinds
        for o in kubesim.list(kind)
    ]
