"""Permanent rejections end the edge after ``manager.max_rejections``; a claim held elsewhere stays a wait."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from navigator.config.edge import EdgeConfig
from navigator.edge.app import Edge
from navigator.edge.stream import GaveUp, StreamState
from navigator.kubesim import KubeSim
from navigator.testing.edge import run_test_edge
from navigator.testing.manager import run_test_manager
from navigator.v1 import sync_pb2

from .fake_manager import FakeManager

#: Seconds a wait may take before the test gives up: only a stuck edge gets there.
CEILING = 60.0


@pytest.mark.parametrize(
    ("cluster", "token", "expected"),
    [
        ("east", "wrong", "the token is not valid for cluster 'east'"),
        ("nowhere", "s3cret", "no credentials are configured for cluster 'nowhere'"),
    ],
)
async def test_a_real_manager_refusing_the_edge_ends_it_after_max_rejections(
    kubesim: KubeSim, tmp_path: Path, cluster: str, token: str, expected: str
) -> None:
    async with (
        run_test_manager(tmp_path, tokens={"east": "s3cret"}) as mgr,
        run_test_edge(
            kubesim.kubeconfig_path, kubesim.context, mgr.address, cluster,
            manager={"token": token, "max_rejections": 3},
        ) as edge,
    ):  # fmt: skip
        verdict = await asyncio.wait_for(edge.wait_failed(), CEILING)
    assert isinstance(verdict, GaveUp), verdict
    assert edge.stats.rejects == 3 and edge.stats.accepts == 0
    assert edge.stats.state == StreamState.STOPPED
    text = str(verdict)
    assert "3 time(s) in a row" in text and "UNAUTHENTICATED" in text and expected in text
    assert "manager.token" in text  # what to check


async def test_an_accept_resets_the_count(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    refusals = iter([True, True, False])

    def reject(identify: sync_pb2.Identify) -> sync_pb2.Reject | None:
        if next(refusals, False):
            return sync_pb2.Reject(reason=sync_pb2.REJECT_REASON_UNAUTHENTICATED, message="token rotated")
        return None

    fake_manager.reject = reject
    async with Edge(make_config(fake_manager.address, manager={"max_rejections": 3})) as edge:
        await edge.wait_until(lambda e: e.stats.applied_full >= 1)
        assert edge.stats.rejects == 2 and edge.connected


async def test_a_claim_held_by_another_edge_is_a_wait_not_a_rejection(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    fake_manager.reject = lambda identify: sync_pb2.Reject(
        reason=sync_pb2.REJECT_REASON_ALREADY_HELD, message="held", holder_edge_id="other-edge"
    )
    async with Edge(make_config(fake_manager.address, manager={"max_rejections": 1})) as edge:
        await edge.wait_until(lambda e: e.stats.rejects >= 4)
        assert edge.stats.state == StreamState.STANDBY


async def test_zero_retries_forever(
    kubesim: KubeSim, fake_manager: FakeManager, make_config: Callable[..., EdgeConfig]
) -> None:
    fake_manager.reject = lambda identify: sync_pb2.Reject(
        reason=sync_pb2.REJECT_REASON_UNSUPPORTED, message="protocol 9 only"
    )
    async with Edge(make_config(fake_manager.address, manager={"max_rejections": 0})) as edge:
        await edge.wait_until(lambda e: e.stats.rejects >= 6)
        assert edge.stats.state == StreamState.STANDBY


async def test_an_unsupported_protocol_version_is_permanent_too(
    kubesim: KubeSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An edge from the future: the manager speaks none of its protocol (UNSUPPORTED, naming the version).
    monkeypatch.setattr("navigator.edge.stream.PROTOCOL_VERSION", 99)
    async with (
        run_test_manager(tmp_path) as mgr,
        run_test_edge(kubesim.kubeconfig_path, kubesim.context, mgr.address, "east", manager={"max_rejections": 2}) as edge,
    ):
        verdict = await asyncio.wait_for(edge.wait_failed(), CEILING)
    text = str(verdict)
    assert "2 time(s) in a row: UNSUPPORTED: unsupported protocol_version 99" in text, text
    assert "upgrade the older one" in text
