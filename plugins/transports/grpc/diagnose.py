"""Why the edge cannot reach its manager, found by plain means: resolve the host, open a TCP
connection, shake hands over TLS.

A gRPC channel that does not become ready says only that it is not ready; the
reason (refused, unknown host, a certificate the edge does not trust) sits in a
debug string whose wording changes between gRPC versions. When the channel did
not become ready within the connect timeout, the edge probes once and names the
reason in its own words, each with what to check.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
import time
from pathlib import Path

import grpc

from navigator.plugin import EdgeEndpoint

#: The client's first bytes on an HTTP/2 connection (RFC 9113, 3.4): a gRPC server answers with SETTINGS.
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: HTTP/2 frame type of SETTINGS, the fourth byte of the server's first frame.
_SETTINGS = 0x04


def split_address(address: str) -> tuple[str, int] | None:
    """``host`` and ``port`` of a ``host:port`` (``[v6]:port``, ``dns:///host:port``) target; None otherwise."""
    target = address.removeprefix("dns:///").removeprefix("dns:")
    host, sep, port = target.rpartition(":")
    if not sep or not host or not port.isdigit() or "/" in host:
        return None
    return host.removeprefix("[").removesuffix("]"), int(port)


async def diagnose(endpoint: EdgeEndpoint, budget: float, *, timed_out: bool = False) -> str | None:
    """The reason ``endpoint`` cannot be reached, or None when the host resolves, takes a TCP connection
    and (with TLS) completes a handshake, i.e. when nothing plain explains the failure.

    ``timed_out``: the channel never became ready, so a server that takes the connection and then
    stays silent is the explanation (before the timeout it may just be starting).
    """
    parts = split_address(endpoint.address)
    if parts is None:
        return None
    host, port = parts
    if through_proxy(host):
        return None  # gRPC went through the proxy; a direct connection would test another path
    deadline = time.monotonic() + max(budget, 0.1)
    try:
        sock, problem = await _tcp(host, port, deadline)
    except _Found as found:
        return found.reason
    if sock is None:
        return problem
    try:
        if endpoint.tls.enabled:
            reason = await _tls(sock, host, endpoint, deadline)
        else:
            reason = await _plaintext(sock, deadline)
    finally:
        sock.close()
    if reason == _SILENT:
        return f"timed out: {host}:{port} takes TCP connections but sends no answer" if timed_out else None
    return reason


#: The server took the connection and said nothing within the probe's time.
_SILENT = "silent"


def through_proxy(host: str) -> bool:
    """Whether gRPC reaches ``host`` through an HTTP proxy (``grpc_proxy``, ``https_proxy`` or ``http_proxy``,
    unless ``no_grpc_proxy`` / ``no_proxy`` exempts it)."""
    if not any(_env(name) for name in ("grpc_proxy", "https_proxy", "http_proxy")):
        return False
    exempt = _env("no_grpc_proxy") or _env("no_proxy")
    suffixes = [entry.strip().lstrip("*").lstrip(".") for entry in exempt.split(",") if entry.strip()]
    if "" in suffixes:  # "*": no proxy for any host
        return False
    return not any(host == suffix or host.endswith("." + suffix) for suffix in suffixes)


def _env(name: str) -> str:
    """A proxy variable, written in lower or upper case as tools do."""
    return os.environ.get(name) or os.environ.get(name.upper()) or ""


class _Found(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.05)


async def _tcp(host: str, port: int, deadline: float) -> tuple[socket.socket | None, str | None]:
    """A connected socket to the first address that takes one, or the reason none did."""
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), _left(deadline))
    except socket.gaierror as exc:
        raise _Found(f"cannot resolve host {host} ({exc.strerror or exc})") from None
    except TimeoutError:
        raise _Found(f"cannot resolve host {host} (no answer from DNS in time)") from None
    problems: list[str] = []
    for family, kind, proto, _, sockaddr in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, sockaddr), _left(deadline))
        except TimeoutError:
            problems.append(f"timed out connecting to {_where(sockaddr)}")
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                problems.append("connection refused")
            else:
                problems.append(f"{exc.strerror or exc} ({_where(sockaddr)})")
        else:
            return sock, None
        sock.close()
        if time.monotonic() >= deadline:
            break
    unique = list(dict.fromkeys(problems))
    if unique == ["connection refused"]:
        return None, f"connection refused (nothing listens on {host}:{port})"
    return None, "; ".join(unique) or f"no address for {host}"


def _where(sockaddr: tuple[object, ...]) -> str:
    ip, port = sockaddr[0], sockaddr[1]
    return f"[{ip}]:{port}" if ":" in str(ip) else f"{ip}:{port}"


def grpc_roots() -> Path | None:
    """The CA certificates gRPC trusts when ``manager.tls.ca_file`` is not set: its own bundle (or the
    file ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` names), not the system's, so the probe checks the same."""
    override = os.environ.get("GRPC_DEFAULT_SSL_ROOTS_FILE_PATH")
    if override:
        return Path(override)
    bundled = Path(grpc.__file__).parent / "_cython" / "_credentials" / "roots.pem"
    return bundled if bundled.is_file() else None


def _context(endpoint: EdgeEndpoint) -> ssl.SSLContext:
    tls = endpoint.tls
    try:
        context = ssl.create_default_context(cafile=tls.ca_file.expanduser() if tls.ca_file else grpc_roots())
        if tls.cert_file is not None and tls.key_file is not None:
            context.load_cert_chain(tls.cert_file.expanduser(), tls.key_file.expanduser())
    except (ssl.SSLError, OSError) as exc:
        raise _Found(f"cannot use the TLS files in manager.tls: {exc}") from None
    context.set_alpn_protocols(["h2"])
    return context


async def _tls(sock: socket.socket, host: str, endpoint: EdgeEndpoint, deadline: float) -> str | None:
    """Shake hands as gRPC would, on a thread: a blocking ``ssl`` socket reports the server's alert
    (a refused client certificate arrives after a TLS 1.3 handshake), where asyncio only sees EOF."""
    try:
        context = _context(endpoint)
    except _Found as found:
        return found.reason
    sock.setblocking(True)
    sock.settimeout(_left(deadline))
    return await asyncio.to_thread(_handshake, sock, context, host, endpoint)


def _handshake(sock: socket.socket, context: ssl.SSLContext, host: str, endpoint: EdgeEndpoint) -> str | None:
    tls = endpoint.tls
    trusted = f"manager.tls.ca_file {tls.ca_file}" if tls.ca_file else "gRPC's default CA certificates"
    try:
        wrapped = context.wrap_socket(sock, server_hostname=tls.server_name or host)
    except ssl.SSLCertVerificationError as exc:
        why = (exc.verify_message or exc.reason or "").rstrip(".")
        return f"TLS handshake failed: certificate verify failed: {why} (checked with {trusted})"
    except ssl.SSLError as exc:
        return _tls_failure(exc, endpoint)
    except TimeoutError:
        return _SILENT
    except OSError as exc:
        return f"TLS handshake failed: the manager closed the connection ({exc.strerror or exc})"
    try:
        # Under TLS 1.3 a server refuses a client certificate only after the handshake: read a little.
        wrapped.settimeout(min(sock.gettimeout() or 1.0, 1.0))
        wrapped.sendall(HTTP2_PREFACE)
        answer = wrapped.recv(1)
    except ssl.SSLError as exc:
        return _tls_failure(exc, endpoint)
    except TimeoutError:
        return None  # shook hands and has not spoken yet: TLS is not the problem
    except OSError:
        answer = b""
    finally:
        wrapped.close()
    if not answer:
        return "TLS handshake failed: the manager hung up right after it" + _certificate_hint(endpoint)
    return None


def _tls_failure(exc: ssl.SSLError, endpoint: EdgeEndpoint) -> str:
    reason = exc.reason or str(exc)
    if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "PACKET_LENGTH_TOO_LONG"):
        return f"TLS handshake failed: {reason} (the manager does not speak TLS: drop manager.tls.enabled)"
    if "CERTIFICATE" in reason or "UNKNOWN_CA" in reason:
        return f"TLS handshake failed: the manager refused this edge's certificate ({reason})" + _certificate_hint(
            endpoint
        )
    return f"TLS handshake failed: {reason}"


def _certificate_hint(endpoint: EdgeEndpoint) -> str:
    if endpoint.tls.cert_file is None:
        return "; it requires a client certificate: set manager.tls.cert_file and key_file"
    return f"; is {endpoint.tls.cert_file} signed by the CA the manager trusts (its tls.client_ca_file)?"


async def _plaintext(sock: socket.socket, deadline: float) -> str | None:
    """A plaintext edge against a TLS (or non-gRPC) port: the first bytes back tell which."""
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_sendall(sock, HTTP2_PREFACE), _left(deadline))
        answer = await asyncio.wait_for(loop.sock_recv(sock, 16), min(_left(deadline), 1.0))
    except TimeoutError:
        return _SILENT
    except OSError:
        return None
    if len(answer) >= 4 and answer[3] == _SETTINGS:
        return None  # a gRPC (HTTP/2) server: nothing plain is wrong
    if answer and answer[0] in (0x15, 0x16):  # a TLS alert or handshake record
        return "the manager expects TLS and this edge connects in plaintext: set manager.tls.enabled"
    if not answer:
        return "the manager closed the connection without a word (does it expect TLS? then set manager.tls.enabled)"
    if answer.startswith(b"HTTP/"):
        return "the address answers HTTP/1.x, not gRPC: is it the manager's gRPC port?"
    return None
