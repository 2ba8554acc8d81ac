"""How a Resource's ``data`` is encoded into the wire payload.

Edge and manager negotiate one serializer per stream at connect time, so a
faster or more compact encoding can be added without a protocol change.
"""

from __future__ import annotations

from collections.abc import Mapping
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


def payload_json(serializer: Serializer, payload: bytes) -> bytes:
    """A payload as JSON object bytes, the manager's one currency from wire to row to query.

    A serializer may define ``to_json(payload) -> bytes`` (raising ``ValueError`` on
    malformed input) to skip the decode: the ``json`` serializer only validates.
    """
    to_json = getattr(serializer, "to_json", None)
    if to_json is not None:
        return bytes(to_json(payload))
    return orjson.dumps(serializer.decode(payload))
