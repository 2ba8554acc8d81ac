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
        """The payload itself once it is known to be a JSON object every reader can parse: the manager
        stores these bytes (only for objects it writes: unchanged ones are never looked at).

        Parsed once (orjson, about 3 µs for a pod): that checks the syntax and UTF-8, and refuses
        numbers no reader can parse, such as ``{"a":1e999}`` or 400 digits, which are valid JSON
        syntax but become infinity as a double; stored, they broke every query answering ``data``
        as a Struct (found by fuzzing). The manager bounds the nesting itself.

        The usual payload takes a path ten times faster: ASCII, no long digit run, large exponent
        or surrogate escape (what only the full parse judges), and an object by msgspec's scan,
        which checks the syntax while skipping every field instead of building it. Anything
        else takes the full parse; the fast path never accepts what the full parse refuses.
        """
        if payload.isascii() and not _suspect(payload):
            try:
                _OBJECT.decode(payload)
                return payload
            except (msgspec.DecodeError, RecursionError):
                pass  # the full parse says why
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise ValueError(_why_not(payload, str(exc))) from None
        if not isinstance(value, dict):
            raise ValueError("payload must be a JSON object")
        return payload


def _why_not(payload: bytes, parse_error: str) -> str:
    """What is wrong with a payload orjson refused, in the words a user expects (only on that path)."""
    if "number" in parse_error:
        return f"payload cannot be decoded: a number no reader can parse ({parse_error})"
    if "depth" in parse_error or "recursion" in parse_error:
        return "payload nests objects and arrays too deeply to be read"
    try:
        _SYNTAX.decode(payload)
        payload.decode()
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return f"payload is not valid JSON: {exc}"
    except RecursionError:
        return "payload nests objects and arrays too deeply to be read"
    return f"payload is not valid JSON: {parse_error}"


#: Scans a JSON object, skipping its fields: syntax checked, nothing built.
_OBJECT = msgspec.json.Decoder(msgspec.defstruct("Object", []))
#: What only the full parse judges: numbers a double or a 64-bit integer may not hold (16 digits
#: and more, exponents of 3 digits: a number's exponent always follows a digit, so ``node-123``
#: is no suspect), and ``\\u`` escapes (surrogates must come in valid pairs). Looked for as
#: substrings once digits are one byte and ``E`` is ``e``: a regular expression took 6 µs a pod.
_DIGITS = bytes.maketrans(b"0123456789E", b"0000000000e")


def _suspect(payload: bytes) -> bool:
    marked = payload.translate(_DIGITS)
    return (
        b"\\u" in payload
        or b"0000000000000000" in marked
        or (b"0e" in marked and (b"0e000" in marked or b"0e-000" in marked or b"0e+000" in marked))
    )


#: Names syntax errors as msgspec words them ("malformed", "truncated", "trailing characters").
_SYNTAX = msgspec.json.Decoder(msgspec.Raw)


@hookimpl
def navigator_serializers() -> Iterable[Serializer]:
    return [JsonSerializer()]
