"""A collected object in its compact form: one serialized ``navigator.v1.Resource``.

Large clusters are the normal case, so a collection is not kept as Python
objects (a pod's record costs kilobytes as dicts, under one as bytes): each
object is encoded as soon as it is read, and states are assembled from these
bytes. The payload is encoded with the edge's preferred serializer; a stream
that negotiated another one gets it re-encoded.
"""

from __future__ import annotations

from navigator.interfaces import Serializer
from navigator.resource import Resource
from navigator.v1 import sync_pb2


def encode_resource(resource: Resource, serializer: Serializer) -> sync_pb2.Resource:
    return sync_pb2.Resource(
        kind=resource.kind,
        namespace=resource.namespace,
        name=resource.name,
        uid=resource.uid,
        resource_version=resource.resource_version,
        labels=resource.labels,
        payload=serializer.encode(resource.data),
    )


def pack(resource: Resource, serializer: Serializer) -> bytes:
    """The compact form: a serialized ``navigator.v1.Resource``."""
    return encode_resource(resource, serializer).SerializeToString()


def unpack(item: bytes, serializer: Serializer) -> Resource:
    message = sync_pb2.Resource.FromString(item)
    return Resource(
        kind=message.kind,
        namespace=message.namespace,
        name=message.name,
        uid=message.uid,
        resource_version=message.resource_version,
        labels=dict(message.labels),
        data=serializer.decode(message.payload),
    )


def reencode(item: bytes, source: Serializer, target: Serializer) -> bytes:
    """The same record with its payload in ``target``'s encoding."""
    if source.name == target.name:
        return item
    message = sync_pb2.Resource.FromString(item)
    message.payload = target.encode(source.decode(message.payload))
    return message.SerializeToString()
