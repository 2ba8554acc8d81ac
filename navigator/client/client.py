"""A client for the manager's Query service (``navigator.v1.Query``), blocking and asyncio flavours.

Built as httpx is: one core, ``QueryCore``, does everything that does not wait on
the network (channel settings, building requests, turning responses and pages
into rows, mapping gRPC errors to ``QueryError``); ``QueryClient`` (blocking) and
``AsyncQueryClient`` (asyncio) are thin faces that only make the calls, with the
same methods and rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from navigator.client.rows import change_row, cluster_row, diff_row, record_dict
from navigator.errors import NavigatorError
from navigator.v1 import query_pb2, query_pb2_grpc

if TYPE_CHECKING:  # the config models (pydantic) are not needed to ask a manager
    from navigator.config.common import ClientTLSConfig

DEFAULT_PORT = 50051
DEFAULT_ADDRESS = f"127.0.0.1:{DEFAULT_PORT}"
#: gRPC's own target names, passed through as they are.
GRPC_SCHEMES = ("unix:", "unix-abstract:", "dns:", "ipv4:", "ipv6:", "vsock:")


def manager_address(text: str) -> str:
    """``host:port``; a host alone gets the manager's default port, 50051 (gRPC itself would take 443).

    ``[::1]`` and ``[::1]:50051`` are IPv6 hosts; gRPC target names (``unix:PATH``,
    ``dns:///host:port``) are taken as they are. Raises ``ValueError`` for an empty
    host or a port that is not a number from 1 to 65535.
    """
    value = text.strip()
    if value.startswith(GRPC_SCHEMES):  # a gRPC target name (unix:/run/navigator.sock, dns:///host:port)
        return value
    host, sep, port = value.rpartition(":")
    if (value.startswith("[") and value.endswith("]")) or not sep or (":" in host and not host.startswith("[")):
        host, port = value, str(DEFAULT_PORT)  # no port given (a bare IPv6 address is all colons)
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
    if not host.strip("[]"):
        raise ValueError(f"invalid manager address {text!r}: expected HOST or HOST:PORT")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"invalid manager address {text!r}: the port must be a number from 1 to 65535")
    return f"{host}:{int(port)}"

#: A gRPC channel, blocking or asyncio.
C = TypeVar("C")


class QueryError(NavigatorError):
    """The manager could not be reached or refused the query; the message says which."""


class InvalidQuery(QueryError):
    """The manager refused the query's arguments (gRPC INVALID_ARGUMENT): the caller asked wrongly."""


class NotAuthorized(QueryError):
    """The manager refused the caller: no reader's token or certificate (``code`` UNAUTHENTICATED), or a
    cluster its reader may not read (PERMISSION_DENIED)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def _metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """The call metadata that presents ``token`` (``authorization: Bearer ...``); none without a token."""
    if token is None:
        return ()
    token = token.strip()
    if not token:
        raise QueryError("the token is empty")
    if any(c.isspace() or not c.isprintable() for c in token):
        raise QueryError("the token has spaces or control characters in it")
    return (("authorization", f"Bearer {token}"),)


def _credentials(tls: ClientTLSConfig | None) -> grpc.ChannelCredentials | None:
    if tls is None or not tls.enabled:
        return None

    def read(path: Any) -> bytes | None:
        if path is None:
            return None
        try:
            return bytes(path.expanduser().read_bytes())
        except OSError as exc:
            raise QueryError(f"cannot read {path}: {exc.strerror or exc}") from None

    return grpc.ssl_channel_credentials(
        root_certificates=read(tls.ca_file),
        private_key=read(tls.key_file),
        certificate_chain=read(tls.cert_file),
    )


def _options(tls: ClientTLSConfig | None) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]
    if tls is not None and tls.server_name:
        options.append(("grpc.ssl_target_name_override", tls.server_name))
    return options


class Progress:
    """How far a streamed answer got, so that an error part-way can say so."""

    __slots__ = ("rows",)

    def __init__(self) -> None:
        self.rows = 0


def _error(exc: grpc.RpcError, address: str, timeout: float, rows: int = 0) -> QueryError:
    """``rows``: how many rows of a streamed answer had arrived before it failed."""
    # Both grpc.Call errors and grpc.aio's AioRpcError carry code() and details().
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        if rows:
            return QueryError(f"the manager at {address} did not finish answering within {timeout:g}s ({rows:,} rows)")
        return QueryError(f"the manager at {address} did not answer within {timeout:g}s")
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return NotAuthorized(f"the manager at {address} refused the query: {details}", code.name)
    if rows and code not in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION):
        # The answer had begun: the manager went away or failed part-way through it.
        return QueryError(f"the answer from the manager at {address} broke off after {rows:,} rows: {details}")
    if code is grpc.StatusCode.UNAVAILABLE:
        return QueryError(f"cannot reach the manager at {address}: {details}")
    if code is grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidQuery(f"invalid query: {details}")
    if code is grpc.StatusCode.FAILED_PRECONDITION:
        return QueryError(f"the manager at {address} cannot answer: {details}")
    return QueryError(f"query failed ({code.name if code else 'error'}): {details}")


def timestamp(value: datetime | None) -> Timestamp | None:
    """A protobuf Timestamp, or ``None`` (the field stays unset) for ``None``; naive times are refused."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"{value.isoformat()} has no time zone")
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def list_request(
    kind: str | None,
    cluster: str | None,
    namespace: str | None,
    selector: str | None,
    name: str | None,
    limit: int | None,
    at: datetime | None = None,
) -> query_pb2.ListResourcesRequest:
    return query_pb2.ListResourcesRequest(
        kind=kind or "",
        cluster=cluster or "",
        namespace=namespace or "",
        label_selector=selector or "",
        name=name or "",
        limit=limit or 0,
        data_as_json=True,
        labels_as_json=True,
        at=timestamp(at),
    )


def changes_request(
    cluster: str | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    selector: str | None = None,
    name: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> query_pb2.ListChangesRequest:
    return query_pb2.ListChangesRequest(
        cluster=cluster or "",
        kind=kind or "",
        namespace=namespace or "",
        label_selector=selector or "",
        name=name or "",
        since=timestamp(since),
        until=timestamp(until),
        limit=limit or 0,
    )


def diff_request(
    from_time: datetime,
    to_time: datetime | None = None,
    cluster: str | None = None,
    kind: str | None = None,
    namespace: str | None = None,
    selector: str | None = None,
) -> query_pb2.DiffRequest:
    return query_pb2.DiffRequest(
        from_time=timestamp(from_time),
        to_time=timestamp(to_time),
        cluster=cluster or "",
        kind=kind or "",
        namespace=namespace or "",
        label_selector=selector or "",
    )


def watch_request(
    kind: str | None = None,
    cluster: str | None = None,
    namespace: str | None = None,
    selector: str | None = None,
    name: str | None = None,
    initial: bool = False,
) -> query_pb2.WatchRequest:
    return query_pb2.WatchRequest(
        kind=kind or "",
        cluster=cluster or "",
        namespace=namespace or "",
        label_selector=selector or "",
        name=name or "",
        initial=initial,
    )


#: What a watch ended by the manager's shutdown is told (UNAVAILABLE).
SHUTTING_DOWN = "the manager is shutting down"


class WatchEnded(QueryError):
    """The manager ended a watch: it fell too far behind (RESOURCE_EXHAUSTED) or the manager stopped."""


def _watch_error(exc: grpc.RpcError, address: str, timeout: float, started: bool) -> QueryError:
    """A watch the manager ended says why, in its words; one that had begun and broke off says so."""
    code = exc.code() if callable(getattr(exc, "code", None)) else None
    details = exc.details() if callable(getattr(exc, "details", None)) else str(exc)
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED or (code is grpc.StatusCode.UNAVAILABLE and details == SHUTTING_DOWN):
        return WatchEnded(f"the manager at {address} ended the watch: {details}")
    if started and code is grpc.StatusCode.UNAVAILABLE:
        return QueryError(f"the watch on the manager at {address} broke off: {details}")
    return _error(exc, address, timeout)


class QueryCore:
    """What the blocking and the asyncio client share: all but the calls themselves."""

    def __init__(self, address: str, tls: ClientTLSConfig | None, timeout: float, token: str | None = None) -> None:
        try:
            self.address = manager_address(address)
        except ValueError as exc:
            raise InvalidQuery(str(exc)) from None
        self.timeout = timeout
        #: Sent with every call: a reader's token when the manager has ``auth.readers``.
        self.metadata = _metadata(token)
        self._credentials = _credentials(tls)
        self._options = _options(tls)

    def channel(self, insecure: Callable[..., C], secure: Callable[..., C]) -> C:
        """A channel from ``grpc`` or ``grpc.aio`` (pass its ``insecure_channel`` and ``secure_channel``)."""
        if self._credentials is None:
            return insecure(self.address, options=self._options)
        return secure(self.address, self._credentials, options=self._options)

    @staticmethod
    def clusters_request(cluster: str | None, at: datetime | None = None) -> query_pb2.ListClustersRequest:
        return query_pb2.ListClustersRequest(cluster=cluster or "", at=timestamp(at))

    @staticmethod
    def cluster_rows(response: query_pb2.ListClustersResponse) -> list[dict[str, Any]]:
        return [cluster_row(c) for c in response.clusters]

    #: Asks for the kinds only (a manager older than the question answers the clusters, without kinds).
    KINDS_REQUEST = query_pb2.ListClustersRequest(kinds_only=True)

    @staticmethod
    def kind_rows(response: query_pb2.ListClustersResponse) -> list[dict[str, Any]]:
        return [
            {
                "kind": k.kind,
                "short_names": list(k.short_names),
                "namespaced": k.namespaced,
                "columns": [
                    {"name": c.name, "path": c.path, "wide": c.wide, "type": c.type or "string",
                     "description": c.description}
                    for c in k.columns
                ],
            }
            for k in response.kinds
        ]  # fmt: skip

    @staticmethod
    def change_rows(page: query_pb2.ChangePage) -> Iterator[dict[str, Any]]:
        """The rows of one page of the ListChanges stream."""
        return (change_row(record) for record in page.changes)

    @staticmethod
    def diff_rows(page: query_pb2.DiffPage) -> Iterator[dict[str, Any]]:
        """The rows of one page of the Diff stream."""
        return (diff_row(record) for record in page.entries)

    @contextmanager
    def watch_errors(self, progress: Progress) -> Iterator[None]:
        """Around a watch: a gRPC failure leaves as a ``QueryError``; ``WatchEnded`` when the manager ended it."""
        try:
            yield
        except grpc.RpcError as exc:
            raise _watch_error(exc, self.address, self.timeout, progress.rows > 0) from None

    @contextmanager
    def errors(self, progress: Progress | None = None) -> Iterator[None]:
        """Around a call: a gRPC failure leaves as a ``QueryError`` that says what went wrong.

        Around a stream, pass the ``Progress`` it counts rows in: a failure after the
        first page says the answer broke off, and after how many rows.
        """
        try:
            yield
        except grpc.RpcError as exc:
            raise _error(exc, self.address, self.timeout, progress.rows if progress else 0) from None


class QueryClient:
    """Blocking client (the CLI's); rows are plain dicts in the DESIGN.md §3 shape."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        tls: ClientTLSConfig | None = None,
        timeout: float = 30.0,
        token: str | None = None,
    ):
        self._core = QueryCore(address, tls, timeout, token)
        self._channel = self._core.channel(grpc.insecure_channel, grpc.secure_channel)
        self._stub = query_pb2_grpc.QueryStub(self._channel)

    @property
    def address(self) -> str:
        return self._core.address

    @property
    def timeout(self) -> float:
        return self._core.timeout

    def clusters(self, cluster: str | None = None, at: datetime | None = None) -> list[dict[str, Any]]:
        """Every cluster (or one): status, edge, counts; with ``at``, as they were then."""
        with self._core.errors():
            response = self._stub.ListClusters(
                self._core.clusters_request(cluster, at), timeout=self.timeout, metadata=self._core.metadata
            )
        return self._core.cluster_rows(response)

    def kinds(self) -> list[dict[str, Any]]:
        """How the manager says to show each kind it has a collector for: ``kind``, ``short_names``,
        ``namespaced`` and ``columns`` (``name``, ``path``, ``wide``, ``type``, ``description``), as the
        collectors declare them; ``[]`` from a manager that does not describe kinds."""
        with self._core.errors():
            response = self._stub.ListClusters(
                self._core.KINDS_REQUEST, timeout=self.timeout, metadata=self._core.metadata
            )
        return self._core.kind_rows(response)

    def resources(
        self,
        kind: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        at: datetime | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Matching objects (``record_dict`` rows); with ``at``, as they were then."""
        for page in self.resource_pages(kind, cluster, namespace, selector, name, limit, at):
            yield from map(record_dict, page)

    def resource_pages(
        self,
        kind: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        at: datetime | None = None,
    ) -> Iterator[Sequence[query_pb2.ResourceRecord]]:
        """The same objects as the records of each page, as the manager streams them.

        ``navigator.client.rows`` turns a page into rows (``view_rows``, ``json_rows``):
        the fast way to a whole cluster, one page in memory at a time.
        """
        request = list_request(kind, cluster, namespace, selector, name, limit, at)
        progress = Progress()
        with self._core.errors(progress):
            for page in self._stub.ListResources(request, timeout=self.timeout, metadata=self._core.metadata):
                progress.rows += len(page.resources)
                yield page.resources

    def changes(
        self,
        cluster: str | None = None,
        kind: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Recorded changes, newest first (``change_row`` rows)."""
        request = changes_request(cluster, kind, namespace, selector, name, since, until, limit)
        progress = Progress()
        with self._core.errors(progress):
            for page in self._stub.ListChanges(request, timeout=self.timeout, metadata=self._core.metadata):
                progress.rows += len(page.changes)
                yield from self._core.change_rows(page)

    def diff(
        self,
        from_time: datetime,
        to_time: datetime | None = None,
        cluster: str | None = None,
        kind: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """What was added, removed and changed between two times (``to_time`` ``None``: now)."""
        request = diff_request(from_time, to_time, cluster, kind, namespace, selector)
        progress = Progress()
        with self._core.errors(progress):
            for page in self._stub.Diff(request, timeout=self.timeout, metadata=self._core.metadata):
                progress.rows += len(page.entries)
                yield from self._core.diff_rows(page)

    def watch(
        self,
        kind: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        initial: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """Changes as the manager applies them (``change_row`` rows), until the caller stops or the watch ends.

        With ``initial``, first the matching objects as ADDED (without times). No
        deadline: it runs as long as the caller reads. ``WatchEnded`` when the manager
        ends it (too far behind: narrow the filter or read faster).
        """
        for page in self.watch_pages(kind, cluster, namespace, selector, name, initial):
            yield from map(change_row, page)

    def watch_pages(
        self,
        kind: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        initial: bool = False,
    ) -> Iterator[Sequence[query_pb2.ChangeRecord]]:
        """The same changes as the records of each page, as the manager streams them."""
        call = self._stub.Watch(
            watch_request(kind, cluster, namespace, selector, name, initial), metadata=self._core.metadata
        )
        progress = Progress()
        try:
            with self._core.watch_errors(progress):
                for page in call:
                    progress.rows += len(page.changes)
                    yield page.changes
        finally:
            call.cancel()  # the caller left: the manager drops the watch at once

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> QueryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncQueryClient:
    """The same over ``grpc.aio`` for asyncio code (tests, the demo)."""

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        tls: ClientTLSConfig | None = None,
        timeout: float = 30.0,
        token: str | None = None,
    ):
        self._core = QueryCore(address, tls, timeout, token)
        self._channel = self._core.channel(grpc.aio.insecure_channel, grpc.aio.secure_channel)
        self._stub = query_pb2_grpc.QueryStub(self._channel)

    @property
    def address(self) -> str:
        return self._core.address

    @property
    def timeout(self) -> float:
        return self._core.timeout

    async def clusters(self, cluster: str | None = None, at: datetime | None = None) -> list[dict[str, Any]]:
        with self._core.errors():
            response = await self._stub.ListClusters(
                self._core.clusters_request(cluster, at), timeout=self.timeout, metadata=self._core.metadata
            )
        return self._core.cluster_rows(response)

    async def kinds(self) -> list[dict[str, Any]]:
        with self._core.errors():
            response = await self._stub.ListClusters(
                self._core.KINDS_REQUEST, timeout=self.timeout, metadata=self._core.metadata
            )
        return self._core.kind_rows(response)

    async def resources(
        self,
        kind: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        at: datetime | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        async for page in self.resource_pages(kind, cluster, namespace, selector, name, limit, at):
            for record in page:
                yield record_dict(record)

    async def resource_pages(
        self,
        kind: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        limit: int | None = None,
        at: datetime | None = None,
    ) -> AsyncIterator[Sequence[query_pb2.ResourceRecord]]:
        request = list_request(kind, cluster, namespace, selector, name, limit, at)
        progress = Progress()
        with self._core.errors(progress):
            async for page in self._stub.ListResources(request, timeout=self.timeout, metadata=self._core.metadata):
                progress.rows += len(page.resources)
                yield page.resources

    async def changes(
        self,
        cluster: str | None = None,
        kind: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        request = changes_request(cluster, kind, namespace, selector, name, since, until, limit)
        progress = Progress()
        with self._core.errors(progress):
            async for page in self._stub.ListChanges(request, timeout=self.timeout, metadata=self._core.metadata):
                progress.rows += len(page.changes)
                for row in self._core.change_rows(page):
                    yield row

    async def diff(
        self,
        from_time: datetime,
        to_time: datetime | None = None,
        cluster: str | None = None,
        kind: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        request = diff_request(from_time, to_time, cluster, kind, namespace, selector)
        progress = Progress()
        with self._core.errors(progress):
            async for page in self._stub.Diff(request, timeout=self.timeout, metadata=self._core.metadata):
                progress.rows += len(page.entries)
                for row in self._core.diff_rows(page):
                    yield row

    async def watch(
        self,
        kind: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        initial: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        async for page in self.watch_pages(kind, cluster, namespace, selector, name, initial):
            for record in page:
                yield change_row(record)

    async def watch_pages(
        self,
        kind: str | None = None,
        cluster: str | None = None,
        namespace: str | None = None,
        selector: str | None = None,
        name: str | None = None,
        initial: bool = False,
    ) -> AsyncIterator[Sequence[query_pb2.ChangeRecord]]:
        call = self._stub.Watch(
            watch_request(kind, cluster, namespace, selector, name, initial), metadata=self._core.metadata
        )
        progress = Progress()
        try:
            with self._core.watch_errors(progress):
                async for page in call:
                    progress.rows += len(page.changes)
                    yield page.changes
        finally:
            call.cancel()

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> AsyncQueryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
