'''Hook specifications: the whole plugin API of Navigator.

Every hook is registry-style: a plugin returns the things it offers, and the
edge or manager picks the ones the YAML enables by name. A plugin module is
registered when its entry point is enabled; it implements any of these hooks
with ``@navigator.hookimpl``. Each docstring here is that hook's reference
documentation.
'''

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from navigator.interfaces import Collector, Serializer, SinkPlugin, StoragePlugin, Transport

hookspec = pluggy.HookspecMarker("navigator")


@hookspec
def navigator_collectors() -> Iterable[Collector]:
    """Offer kinds the edge can collect.

    Return :class:`~navigator.interfaces.Collector` records. The edge lists,
    pages, retries and watches the API path the record declares and calls
    ``to_resource`` on every raw object (a ``dict`` parsed from the API's JSON:
    the client's model classes are never built). The collector's ``name`` is the
    kind users query (``navigator query resources --kind widgets``).

    Example, a collector for a custom resource::

        from navigator import hookimpl
        from navigator.interfaces import Collector
        from navigator.resource import Resource

        def widget(obj):
            meta = obj["metadata"]
            return Resource(kind="widgets", namespace=meta.get("namespace", ""),
                            name=meta["name"], uid=meta.get("uid", ""),
                            resource_version=meta.get("resourceVersion", ""),
                            labels=meta.get("labels") or {},
                            data={"size": obj.get("spec", {}).get("size")})

        @hookimpl
        def navigator_collectors():
            return [Collector(name="widgets", api_version="example.com/v1",
                              plural="widgets", to_resource=widget)]
    """


@hookspec
def navigator_serializers() -> Iterable[Serializer]:
    """Offer encodings for resource payloads.

    Return objects following :class:`~navigator.interfaces.Serializer`. The edge
    offers the names it has (``edge.yaml: plugins.serializers``, preferred
    first); the manager picks the first one it also has.

    Example::

        import orjson
        from navigator import hookimpl

        class Json:
            name = "json"
            def encode(self, data): return orjson.dumps(data)
            def decode(self, payload): return orjson.loads(payload)

        @hookimpl
        def navigator_serializers():
            return [Json()]
    """


@hookspec
def navigator_transports() -> Iterable[Transport]:
    """Offer ways for edges and managers to exchange sync messages.

    Return objects following :class:`~navigator.interfaces.Transport`: ``connect``
    gives the edge a stream of ``navigator.v1`` messages, ``serve`` serves the
    manager's sync and query services. One transport is active per process
    (``plugins.transport``, default ``grpc``).

    Example (a transport that only renames the default gRPC one)::

        from navigator import hookimpl
        from navigator_plugins.transports.grpc import GrpcTransport

        class Mine(GrpcTransport):
            name = "mine"

        @hookimpl
        def navigator_transports():
            return [Mine()]
    """


@hookspec
def navigator_storage_backends() -> Iterable[StoragePlugin]:
    """Offer places for the manager to keep state.

    Return :class:`~navigator.interfaces.StoragePlugin` records; ``create`` gets
    ``storage.options`` from the manager YAML and returns a
    :class:`~navigator.interfaces.StorageBackend`. A backend proves itself by
    passing ``navigator.testing.storage_conformance``.

    Example::

        from navigator import hookimpl
        from navigator.interfaces import StoragePlugin

        @hookimpl
        def navigator_storage_backends():
            return [StoragePlugin(name="mydb", create=lambda options: MyBackend(**options))]
    """


@hookspec
def navigator_sinks() -> Iterable[SinkPlugin]:
    """Offer destinations for change events.

    Return :class:`~navigator.interfaces.SinkPlugin` records; the manager builds
    each sink enabled in its YAML (``sinks: [{plugin: log, options: {...}}]``) and
    hands it every batch of :class:`~navigator.resource.Change` after it is persisted.

    Example::

        from navigator import hookimpl
        from navigator.interfaces import SinkPlugin

        class Printer:
            async def send(self, changes):
                for change in changes:
                    print(change.type, change.cluster, change.kind, change.name)
            async def close(self): pass

        @hookimpl
        def navigator_sinks():
            return [SinkPlugin(name="printer", create=lambda options: Printer())]
    """
