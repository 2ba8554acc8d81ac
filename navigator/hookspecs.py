'''Hook specifications: the whole plugin API of Navigator.

Every hook is registry-style: a plugin returns the things it offers, and the
edge or manager picks the ones the YAML enables by name. A plugin module is
registered when its entry point is enabled; it implements any of these hooks
with ``@hookimpl`` from ``navigator.plugin``, the public plugin API. Each
docstring here is that hook's reference documentation, and each example is run
by the test suite as a plugin module.
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

        from navigator.plugin import Collector, Resource, hookimpl

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
        from navigator.plugin import hookimpl

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
    passing ``navigator.testing.storage_conformance`` (this example does).

    Example, a complete backend that keeps everything in one pickle file::

        import json
        import os
        import pickle
        import threading
        from pathlib import Path

        from navigator.plugin import (
            Change, ChangeType, StorageError, StoragePlugin, StoredResource, hookimpl,
        )


        class PickleBackend:
            # Everything in memory, written to one file on every apply (atomically).

            def __init__(self, path):
                self.path, self.lock = Path(path), threading.Lock()
                self.clusters, self.objects = {}, {}  # cluster -> record; (cluster, kind, ns, name) -> Resource

            def migrate(self):
                if self.path.exists():
                    self.clusters, self.objects = pickle.loads(self.path.read_bytes())

            def close(self):
                pass

            def create_claims(self, manager_id, grace_period):
                return None  # one manager per file: the manager's in-memory claims will do

            def _commit(self, clusters, objects):
                tmp = self.path.with_suffix(".tmp")
                tmp.write_bytes(pickle.dumps((clusters, objects)))
                os.replace(tmp, self.path)
                self.clusters, self.objects = clusters, objects

            def _upsert(self, objects, cluster, r, changes):
                key = (cluster, r.kind, r.namespace, r.name)
                json.dumps(r.data)  # only JSON-compatible data may be stored
                old = objects.get(key)
                if old is not None and old.uid != r.uid:
                    changes.append(Change(cluster, r.kind, r.namespace, r.name, old.uid,
                                          ChangeType.DELETED, old.resource_version, None))
                    old = None
                if old is None:
                    changes.append(Change(cluster, r.kind, r.namespace, r.name, r.uid,
                                          ChangeType.ADDED, None, r.resource_version))
                elif old.resource_version != r.resource_version:
                    changes.append(Change(cluster, r.kind, r.namespace, r.name, r.uid,
                                          ChangeType.MODIFIED, old.resource_version, r.resource_version))
                objects[key] = r

            def apply_snapshot(self, cluster, kinds, resources):
                with self.lock:
                    name, objects, changes, seen = cluster.cluster, dict(self.objects), [], set()
                    for r in resources:
                        self._upsert(objects, name, r, changes)
                        seen.add((name, r.kind, r.namespace, r.name))
                    for key, old in list(objects.items()):
                        if key[0] == name and key[1] in kinds and key not in seen:
                            del objects[key]
                            changes.append(Change(name, old.kind, old.namespace, old.name, old.uid,
                                                  ChangeType.DELETED, old.resource_version, None))
                    self._commit({**self.clusters, name: cluster}, objects)
                    return changes

            def apply_delta(self, cluster, upserts, deletions):
                with self.lock:
                    name, objects, changes = cluster.cluster, dict(self.objects), []
                    for r in upserts:
                        self._upsert(objects, name, r, changes)
                    for k in deletions:
                        old = objects.get((name, k.kind, k.namespace, k.name))
                        if old is not None and (not k.uid or k.uid == old.uid):
                            del objects[(name, k.kind, k.namespace, k.name)]
                            changes.append(Change(name, k.kind, k.namespace, k.name, old.uid,
                                                  ChangeType.DELETED, old.resource_version, None))
                    self._commit({**self.clusters, name: cluster}, objects)
                    return changes

            def save_cluster(self, cluster):
                with self.lock:
                    self._commit({**self.clusters, cluster.cluster: cluster}, self.objects)

            def get_cluster(self, cluster):
                return self.clusters.get(cluster)

            def list_clusters(self):
                return [self.clusters[c] for c in sorted(self.clusters)]

            def counts(self, cluster):
                counts = {}
                for (c, kind, _, _) in self.objects:
                    if c == cluster:
                        counts[kind] = counts.get(kind, 0) + 1
                return counts

            def query(self, q):
                found = []
                for (c, kind, ns, name), r in sorted(self.objects.items()):
                    if ((q.cluster or c) == c and (q.kind or kind) == kind and (q.namespace or ns) == ns
                            and (q.name or name) == name and (q.selector is None or q.selector.matches(r.labels))):
                        found.append(StoredResource(c, r))
                return iter(found[:q.limit] if q.limit else found)


        def create(options):
            unknown = set(options) - {"path"}
            if unknown:
                raise StorageError(f"unknown pickle option(s): {', '.join(sorted(unknown))}")
            return PickleBackend(options.get("path", "navigator.pickle"))


        @hookimpl
        def navigator_storage_backends():
            return [StoragePlugin(name="pickle", create=create, description="one pickle file")]
    """


@hookspec
def navigator_sinks() -> Iterable[SinkPlugin]:
    """Offer destinations for change events.

    Return :class:`~navigator.interfaces.SinkPlugin` records; the manager builds
    each sink enabled in its YAML (``sinks: [{plugin: log, options: {...}}]``) and
    hands it every batch of :class:`~navigator.resource.Change` after it is persisted.

    Example::

        from navigator.plugin import SinkPlugin, hookimpl

        class Printer:
            async def send(self, changes):
                for change in changes:
                    print(change.type, change.cluster, change.kind, change.name)
            async def close(self): pass

        @hookimpl
        def navigator_sinks():
            return [SinkPlugin(name="printer", create=lambda options: Printer())]
    """
