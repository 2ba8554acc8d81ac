"""A connection to the manager that fails says why: refused, unknown host, TLS handshake, timed out.

Real sockets and a real gRPC manager throughout; the transport is called as the stream client calls it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from navigator_plugins.transports.grpc import GrpcTransport
from navigator_plugins.transports.grpc.diagnose import split_address, through_proxy

from navigator.config.edge import EdgeConfig
from navigator.edge.app import Edge
from navigator.interfaces import StreamClosed
from navigator.interfaces.transport import ClientTLS, EdgeEndpoint
from navigator.kubesim import KubeSim
from navigator.testing.manager import run_test_manager
from navigator.testing.pki import Pki

PROXY_VARIABLES = ("grpc_proxy", "https_proxy", "http_proxy", "no_grpc_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Straight connections, as gRPC makes them without a proxy in the environment."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


async def failure(endpoint: EdgeEndpoint) -> str:
    with pytest.raises(StreamClosed) as info:
        stream = await GrpcTransport().connect(endpoint)
        await stream.close()
    return str(info.value)


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that takes TCP connections (the kernel's backlog) and never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


async def test_a_closed_port_is_connection_refused(closed_port: int) -> None:
    message = await failure(EdgeEndpoint(f"127.0.0.1:{closed_port}", connect_timeout=1))
    assert message == (
        f"cannot reach the manager at 127.0.0.1:{closed_port} within 1s: "
        f"connection refused (nothing listens on 127.0.0.1:{closed_port})"
    )


async def test_a_manager_that_starts_listening_within_the_timeout_is_reached(closed_port: int, tmp_path: Path) -> None:
    # Refusals while the manager (re)starts are no verdict: gRPC keeps trying, so the edge connects as
    # soon as it listens instead of waiting out its own (growing) reconnect backoff.
    connecting = asyncio.create_task(GrpcTransport().connect(EdgeEndpoint(f"127.0.0.1:{closed_port}", connect_timeout=60)))
    await asyncio.sleep(0.5)  # refused a few times meanwhile
    assert not connecting.done()
    async with run_test_manager(tmp_path, listen=f"127.0.0.1:{closed_port}"):
        stream = await asyncio.wait_for(connecting, 60)
        await stream.close()


async def test_an_unknown_host_cannot_be_resolved() -> None:
    message = await failure(EdgeEndpoint("nonexistent.invalid:50051", connect_timeout=1))
    assert message.startswith(
        "cannot reach the manager at nonexistent.invalid:50051 within 1s: cannot resolve host nonexistent.invalid ("
    ), message


async def test_a_server_that_never_answers_timed_out(silent_port: int) -> None:
    message = await failure(EdgeEndpoint(f"127.0.0.1:{silent_port}", connect_timeout=0.5))
    assert message.startswith(f"cannot reach the manager at 127.0.0.1:{silent_port} within 0.5s: timed out"), message


async def test_a_tls_manager_with_a_certificate_from_another_ca(tmp_path: Path) -> None:
    pki, stranger = Pki.create(tmp_path / "pki"), Pki.create(tmp_path / "other", name="another-ca")
    async with run_test_manager(tmp_path, tls={"cert_file": str(pki.server_cert), "key_file": str(pki.server_key)}) as mgr:
        wrong_ca = ClientTLS(enabled=True, ca_file=stranger.ca)
        message = await failure(EdgeEndpoint(mgr.address, connect_timeout=1, tls=wrong_ca))
        assert message.startswith(
            f"cannot reach the manager at {mgr.address} within 1s: TLS handshake failed: certificate verify failed:"
        ), message
        assert str(stranger.ca) in message  # what was checked against

        wrong_name = ClientTLS(enabled=True, ca_file=pki.ca, server_name="elsewhere.example")
        message = await failure(EdgeEndpoint(mgr.address, connect_timeout=1, tls=wrong_name))
        assert "TLS handshake failed: certificate verify failed:" in message and "elsewhere.example" in message

        message = await failure(EdgeEndpoint(mgr.address, connect_timeout=1))
        assert "set manager.tls.enabled" in message, message

        # The right CA connects: the probe explains failures, it does not invent them.
        stream = await GrpcTransport().connect(EdgeEndpoint(mgr.address, tls=ClientTLS(enabled=True, ca_file=pki.ca)))
        await stream.close()


async def test_tls_against_a_plaintext_manager(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path / "pki")
    async with run_test_manager(tmp_path) as mgr:
        message = await failure(EdgeEndpoint(mgr.address, connect_timeout=1, tls=ClientTLS(enabled=True, ca_file=pki.ca)))
    assert "TLS handshake failed" in message and "does not speak TLS" in message, message


async def test_an_mtls_manager_refuses_an_edge_without_a_client_certificate(tmp_path: Path) -> None:
    pki = Pki.create(tmp_path / "pki")
    server_tls = {"cert_file": str(pki.server_cert), "key_file": str(pki.server_key), "client_ca_file": str(pki.ca)}
    stranger = Pki.create(tmp_path / "other", name="another-ca")
    cert, key = stranger.client("edge-east")
    async with run_test_manager(tmp_path, tls=server_tls) as mgr:
        message = await failure(EdgeEndpoint(mgr.address, connect_timeout=1, tls=ClientTLS(enabled=True, ca_file=pki.ca)))
        assert "TLS handshake failed" in message and "set manager.tls.cert_file and key_file" in message, message
        foreign = ClientTLS(enabled=True, ca_file=pki.ca, cert_file=cert, key_file=key)
        message = await failure(EdgeEndpoint(mgr.address, connect_timeout=1, tls=foreign))
        assert "TLS handshake failed" in message and f"is {cert} signed by the CA the manager trusts" in message, message


async def test_the_edge_reports_the_reason(
    kubesim: KubeSim, make_config: Callable[..., EdgeConfig], closed_port: int
) -> None:
    async with Edge(make_config(f"127.0.0.1:{closed_port}")) as edge:
        await edge.wait_until(lambda e: e.stats.connect_attempts >= 2)
        assert "connection refused" in edge.stats.last_error and edge.stats.accepts == 0


@pytest.mark.parametrize(
    ("address", "parts"),
    [
        ("127.0.0.1:50051", ("127.0.0.1", 50051)),
        ("[::1]:443", ("::1", 443)),
        ("dns:///manager.example:50051", ("manager.example", 50051)),
        ("unix:/run/navigator.sock", None),
    ],
)
def test_addresses_the_probe_understands(address: str, parts: tuple[str, int] | None) -> None:
    assert split_address(address) == parts


def test_no_probe_past_a_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # gRPC goes through the proxy: a direct connection would test another path than the one that failed.
    assert not through_proxy("manager.example")
    monkeypatch.setenv("https_proxy", "http://proxy.internal:3128")
    assert through_proxy("manager.example")
    monkeypatch.setenv("no_proxy", "localhost,.example")
    assert not through_proxy("manager.example") and through_proxy("manager.elsewhere")
