"""Edge tests: the Kubernetes simulator, a protocol-speaking gRPC manager double, config helpers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from navigator_plugins.serializers.protobuf import ProtobufSerializer

from navigator.config.edge import EdgeConfig, KubernetesSection
from navigator.edge.kube import KubeClient
from navigator.kubesim import KubeSim
from navigator.testing.edge import edge_config

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
