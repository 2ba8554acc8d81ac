"""How a Resource's ``data`` is encoded into the wire payload.

Edge and manager negotiate one serializer per stream at connect time, so a
faster or more compact encoding can be added without a protocol change.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import orjson

#: How deeply a payload's objects and arrays may nest (the top object is level 1). Every
#: stored payload must be readable everywhere: a query answers ``data`` as a
#: ``google.protobuf.Struct``, and protobuf parsers refuse a Struct nested much deeper
#: (about 100 messages, 3 per JSON level); orjson re-encodes at most 254 levels.
MAX_PAYLOAD_DEPTH = 32

#: A JSON string (escapes included): its brackets are text, not nesting.
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
#: The same once everything but quotes and brackets is gone (only without escapes).
_BARE_STRING = re.compile(rb'"[^"]*"')
_NOT_BRACKETS = bytes(c for c in range(256) if c not in b"{}[]")
_NOT_BRACKETS_OR_QUOTES = bytes(c for c in range(256) if c not in b'{}[]"')


def json_depth_problem(data: bytes, limit: int = MAX_PAYLOAD_DEPTH) -> str | None:
    """Why the JSON ``data`` nests too deeply, or ``None``.

    Cheap for the usual payload: when it holds no more brackets than ``limit`` it cannot
    nest deeper. Otherwise strings are dropped, then innermost bracket pairs are removed
    ``limit`` times: anything left nests deeper.
    """
    if data.count(b"{") + data.count(b"[") <= limit:
        return None
    if b"\\" in data:
        brackets = _STRING.sub(b"", data).translate(None, _NOT_BRACKETS)
    else:
        marks = data.translate(None, _NOT_BRACKETS_OR_QUOTES)
        # Strings without brackets are now "": once they are gone, no quote is left unless
        # some string holds brackets (pairs are taken from the left, always opening first).
        brackets = marks.replace(b'""', b"")
        if b'"' in brackets:
            brackets = _BARE_STRING.sub(b"", marks)
    for _ in range(limit):
        if not brackets:
            return None
        # One level: the innermost pairs become a mark first, so no pair they enclosed
        # (``[{}]``) is taken in the same pass.
        brackets = brackets.replace(b"{}", b"-").replace(b"[]", b"-").replace(b"-", b"")
    if not brackets:
        return None
    return f"payload nests objects and arrays more than {limit} levels deep"


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
    malformed input) to skip the decode: the ``json`` serializer only validates. Either
    way the result nests at most ``MAX_PAYLOAD_DEPTH`` levels; anything that fails,
    however it fails, raises ``ValueError`` saying why.
    """
    to_json: Callable[[bytes], bytes] | None = getattr(serializer, "to_json", None)
    if to_json is None:
        decode = serializer.decode

        def to_json(payload: bytes) -> bytes:
            return orjson.dumps(decode(payload))

    convert = to_json

    def checked(payload: bytes) -> bytes:
        try:
            data = convert(payload)
        except RecursionError:
            raise ValueError(f"payload nests objects and arrays more than {MAX_PAYLOAD_DEPTH} levels deep") from None
        except orjson.JSONEncodeError as exc:
            raise ValueError(f"payload cannot be encoded as JSON: {exc}") from None
        if (problem := json_depth_problem(data)) is not None:
            raise ValueError(problem)
        return data

    return checked
