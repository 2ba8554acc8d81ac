"""JSON payloads through orjson: the fastest to encode and the easiest to debug."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
import orjson

from navigator.plugin import Serializer, hookimpl


class JsonSerializer:
    name = "json"

    def encode(self, data: Mapping[str, Any]) -> bytes:
        return orjson.dumps(data)

    def decode(self, payload: bytes) -> dict[str, Any]:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"payload is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError(f"payload must be a JSON object, got {type(value).__name__}")
        return value

    def to_json(self, payload: bytes) -> bytes:
        """The payload itself once it is known to be a JSON object: the manager stores these bytes.

        The manager bounds the nesting itself; here only a payload too deep for the
        validator's own recursion must still be a ``ValueError``, not a crash.
        """
        try:
            _VALIDATE.decode(payload)
            payload.decode()
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"payload is not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError("payload nests objects and arrays too deeply to be read") from None
        if payload.lstrip()[:1] != b"{":
            raise ValueError("payload must be a JSON object")
        return payload


#: Checks the syntax without building objects (a ``Raw`` value is only scanned).
_VALIDATE = msgspec.json.Decoder(msgspec.Raw)


@hookimpl
def navigator_serializers() -> Iterable[Serializer]:
    return [JsonSerializer()]
