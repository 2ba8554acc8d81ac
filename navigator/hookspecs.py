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
    from navigator.interfaces import Collector, Serializer, SinkPlugin, StoragePlugin, TransportPlugin

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
def navigator_transports() -> Iterable[TransportPlugin]:
    """Offer ways for edges and managers to exchange sync messages.

    Return :class:`~navigator.interfaces.TransportPlugin` records. One transport is
    active per process (``transport: {plugin: grpc, options: {...}}`` in edge.yaml
    and manager.yaml); ``create`` gets ``transport.options`` and returns a
    :class:`~navigator.interfaces.Transport`, whose ``connect`` gets an
    :class:`~navigator.interfaces.EdgeEndpoint` and gives the edge a stream of
    ``navigator.v1`` messages, and whose ``serve`` gets a
    :class:`~navigator.interfaces.ManagerEndpoint` and serves the manager's sync
    and query services. Validate options with ``validate_options`` so a bad one
    stops startup naming ``transport.options.<key>``.

    Example (the shape only: this transport never reaches anyone)::

        from navigator.plugin import (
            Duration, PluginOptions, StreamClosed, TransportPlugin, hookimpl, validate_options,
        )

        class PigeonOptions(PluginOptions):
            patience: Duration = 5.0

        class Loft:
            def __init__(self, address):
                self.address = address
            async def stop(self, grace): pass

        class Pigeons:
            def __init__(self, options):
                self.options = validate_options(PigeonOptions, options, "transport.options")
            async def connect(self, endpoint):
                raise StreamClosed(f"no pigeon found {endpoint.address} in {self.options.patience:g}s")
            async def serve(self, endpoint, services):
                return Loft(endpoint.listen)

        @hookimpl
        def navigator_transports():
            return [TransportPlugin(name="pigeons", create=Pigeons)]
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
