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

    For big kinds, declare the fields you read as a ``msgspec.Struct`` and pass it
    as ``item_type``: pages then decode straight into it, skipping every other
    field, and ``to_resource`` receives Struct instances (watch events are
    converted to it too). docs/writing-a-plugin.md, "The fast path", has an example.

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
    first); the manager picks the first one it also has. The manager stores every
    payload as JSON bytes: a serializer with ``to_json(payload) -> bytes`` gives
    them directly, any other is decoded and the dict encoded once.

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
            ObjectVersion, StorageError, StorageFenced, StoragePlugin, StorageRegressed, StoredResource, hookimpl,
        )


        def _matches(q, cluster, kind, namespace, name, labels):
            return ((q.cluster or cluster) == cluster and (q.kind or kind) == kind
                    and (q.namespace or namespace) == namespace and (q.name or name) == name
                    and (q.selector is None or q.selector.matches(labels)))


        class PickleBackend:
            # Everything in memory, written to one file on every change (atomically). The state is
            # (clusters: name -> record, objects: (cluster, kind, ns, name) -> (Resource, digest),
            #  history: [(Change, labels)] and records: [ClusterRecord], both oldest first).

            def __init__(self, path):
                self.path, self.lock, self.state = Path(path), threading.Lock(), ({}, {}, [], [])

            def migrate(self):
                if self.path.exists():
                    self.state = pickle.loads(self.path.read_bytes())

            def close(self):
                pass

            def create_claims(self, manager_id, grace_period):
                return None  # one manager per file: the manager's in-memory claims will do

            def _commit(self, state):
                tmp = self.path.with_suffix(".tmp")
                tmp.write_bytes(pickle.dumps(state))
                os.replace(tmp, self.path)
                self.state = state  # readers keep the tuple they started with: a consistent snapshot

            def versions(self, cluster):
                return iter([ObjectVersion(r.kind, r.namespace, r.name, r.uid, r.resource_version, digest)
                             for key, (r, digest) in self.state[1].items() if key[0] == cluster])

            def read(self, cluster, keys):
                objects = self.state[1]
                found = (objects.get((cluster, k.kind, k.namespace, k.name)) for k in keys)
                return [entry[0] for entry in found if entry is not None]

            def _fence(self, cluster, upserts=()):
                # Refuse a write under an older claim than the cluster's, or one moving an object back.
                stored = self.state[0].get(cluster.cluster)
                if stored is not None and stored.epoch > cluster.epoch:
                    raise StorageFenced(f"cluster {cluster.cluster}: a newer claim (epoch {stored.epoch}) exists")
                for o in upserts:
                    r, old = o.resource, self.state[1].get((cluster.cluster, o.resource.kind,
                                                            o.resource.namespace, o.resource.name))
                    old_rv = old[0].resource_version if old and old[0].uid == r.uid else ""
                    if old_rv.isdigit() and r.resource_version.isdigit() and int(old_rv) > int(r.resource_version):
                        raise StorageRegressed(f"{r.kind} {r.namespace}/{r.name}: stored at {old_rv}, "
                                            f"newer than {r.resource_version}")

            def apply(self, cluster, upserts, deletions, history, record_cluster=False):
                with self.lock:
                    self._fence(cluster, upserts)
                    clusters, objects, changes, records = self.state
                    name, objects, changes = cluster.cluster, dict(objects), list(changes)
                    for k in deletions:
                        objects.pop((name, k.kind, k.namespace, k.name), None)
                    for change in history or []:  # DELETED keeps the last known labels, for selectors
                        old = self.state[1].get((name, change.kind, change.namespace, change.name))
                        labels = change.resource.labels if change.resource else old[0].labels if old else {}
                        changes.append((change, labels))
                    for o in upserts:
                        r = o.resource
                        json.dumps(r.data)  # only JSON-compatible data may be stored
                        objects[(name, r.kind, r.namespace, r.name)] = (r, o.digest)
                    changes.sort(key=lambda entry: entry[0].applied_at)  # stable: ties stay in apply order
                    if record_cluster and cluster.last_sync is not None:
                        records = sorted([*records, cluster], key=lambda r: r.last_sync)
                    self._commit(({**clusters, name: cluster}, objects, changes, records))

            def save_cluster(self, cluster):
                with self.lock:
                    self._fence(cluster)
                    self._commit(({**self.state[0], cluster.cluster: cluster}, *self.state[1:]))

            def get_cluster(self, cluster, at=None):
                if at is None:
                    return self.state[0].get(cluster)
                return next((r for r in reversed(self.state[3]) if r.cluster == cluster and r.last_sync <= at), None)

            def list_clusters(self, at=None):
                if at is None:
                    return [self.state[0][c] for c in sorted(self.state[0])]
                latest = {r.cluster: r for r in self.state[3] if r.last_sync <= at}
                return [latest[c] for c in sorted(latest)]

            def counts(self, cluster):
                counts = {}
                for c, kind, _, _ in self.state[1]:
                    if c == cluster:
                        counts[kind] = counts.get(kind, 0) + 1
                return counts

            def query(self, q):
                if q.at is None:
                    objects = {key: r for key, (r, _) in self.state[1].items()}
                else:  # per key the latest change at or before q.at, unless it is a DELETED
                    objects = {(c.cluster, c.kind, c.namespace, c.name): c.resource
                               for c, _ in self.state[2] if c.applied_at <= q.at}
                found = [StoredResource(key[0], r) for key, r in sorted(objects.items(), key=lambda i: i[0])
                         if r is not None and _matches(q, *key, r.labels)]
                return iter(found[:q.limit] if q.limit is not None else found)

            def history(self, q):
                found = [c for c, labels in reversed(self.state[2])
                         if _matches(q, c.cluster, c.kind, c.namespace, c.name, labels)
                         and (q.since is None or c.applied_at >= q.since)
                         and (q.until is None or c.applied_at <= q.until)]
                return iter(found[:q.limit] if q.limit is not None else found)

            def prune_history(self, before, max_rows):
                with self.lock:
                    clusters, objects, changes, records = self.state
                    last = {(c.cluster, c.kind, c.namespace, c.name): i
                            for i, (c, _) in enumerate(changes) if c.applied_at < before}
                    kept = [(c, labels) for i, (c, labels) in enumerate(changes) if c.applied_at >= before
                            or (last[(c.cluster, c.kind, c.namespace, c.name)] == i and c.resource is not None)]
                    if max_rows is not None:
                        kept = kept[max(len(kept) - max_rows, 0):]
                    latest = {r.cluster: i for i, r in enumerate(records) if r.last_sync < before}
                    records = [r for i, r in enumerate(records) if r.last_sync >= before or latest[r.cluster] == i]
                    self._commit((clusters, objects, kept, records))
                    return len(changes) - len(kept)


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
