"""How a Resource's ``data`` is encoded into the wire payload.

Edge and manager negotiate one serializer per stream at connect time, so a
faster or more compact encoding can be added without a protocol change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import orjson


@runtime_checkable
class Serializer(Protocol):
    #: The negotiated name, e.g. ``"protobuf"``.
    name: str

    def encode(self, data: Mapping[str, Any]) -> bytes:
        """Encode JSON-compatible data."""
        ...

    def decode(self, payload: bytes) -> dict[str, Any]:
        """Decode a payload; raise ``ValueError`` on malformed input."""
        ...


def payload_json(serializer: Serializer) -> Callable[[bytes], bytes]:
    """How to turn this serializer's payloads into JSON object bytes, the manager's one currency.

    A serializer may define ``to_json(payload) -> bytes`` (raising ``ValueError`` on
    malformed input) to skip the decode: the ``json`` serializer only validates.
    """
    to_json: Callable[[bytes], bytes] | None = getattr(serializer, "to_json", None)
    if to_json is not None:
        return to_json
    decode = serializer.decode
    return lambda payload: orjson.dumps(decode(payload))
