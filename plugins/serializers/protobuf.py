"""Protobuf payloads: ``google.protobuf.Struct``, readable by any protobuf runtime.

Struct keeps every number as a double; ``navigator.structs`` turns integral
values back into ints on decode.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError

from navigator.plugin import Serializer, hookimpl, struct_to_dict


class ProtobufSerializer:
    name = "protobuf"

    def encode(self, data: Mapping[str, Any]) -> bytes:
        message = struct_pb2.Struct()
        try:
            message.update(data)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"data cannot be encoded as a protobuf Struct: {exc}") from None
        return message.SerializeToString(deterministic=True)

    def decode(self, payload: bytes) -> dict[str, Any]:
        message = struct_pb2.Struct()
        try:
            message.ParseFromString(payload)
        except DecodeError as exc:
            raise ValueError(f"payload is not a protobuf Struct: {exc}") from None
        return struct_to_dict(message)


@hookimpl
def navigator_serializers() -> Iterable[Serializer]:
    return [ProtobufSerializer()]
