"""Value types that config files write as text: durations (``30s``) and sizes (``64Mi``)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|Ki|Mi|Gi|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3,
    "ki": 1024, "mi": 1024**2, "gi": 1024**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3,
}  # fmt: skip


def parse_duration(value: Any) -> float:
    """``30s``, ``5m``, ``1h``, ``250ms``, ``2d`` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m, 1h or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise ValueError(f"invalid duration {value!r}: use 30s, 5m, 1h or a number of seconds")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def parse_size(value: Any) -> int:
    """``64Mi``, ``4MB``, ``1024`` (bytes)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 4Mi, 64MB or a number of bytes")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (m := _SIZE.match(value)):
        size = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "").lower()])
    else:
        raise ValueError(f"invalid size {value!r}: use 4Mi, 64MB or a number of bytes")
    if size < 0:
        raise ValueError("a size cannot be negative")
    return size


#: What ``navigator config schema`` says of them: everything the loader takes, strings included
#: (a schema typing them as numbers refused the docs' own ``interval: 30s``).
_DURATION_SCHEMA = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": _DURATION.pattern}],
    "description": "seconds, or a string like 30s, 5m, 1h",
}
#: ``_SIZE`` without the ignore-case flag, which JSON Schema's (ECMA 262) patterns cannot carry.
_SIZE_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*([bB]|[kKmMgG][bB]|[kKmMgG][iI][bB]?)?\s*$"
_SIZE_SCHEMA = {
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": _SIZE_PATTERN}],
    "description": "bytes, or a string like 4Mi, 64MB",
    "format": "bytes",
}

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(lambda v: v, return_type=float),
    WithJsonSchema(_DURATION_SCHEMA),
]
Size = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_SIZE_SCHEMA)]
