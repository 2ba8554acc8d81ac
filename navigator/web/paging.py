"""Continue tokens: opaque to clients, bound to the query they continue.

A token names where the last page ended (an object's key for the default order,
an offset for sorted listings, changes and diffs) and a digest of the filters, so
a token given with other filters is refused rather than silently misread.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import orjson

from navigator.interfaces import QueryRefused


def fingerprint(*parts: Any) -> str:
    """A short digest of the query a token belongs to."""
    return hashlib.sha256(orjson.dumps(parts)).hexdigest()[:16]


def encode(query: str, **position: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"q": query, **position})).decode().rstrip("=")


def decode(token: str, query: str) -> dict[str, Any]:
    """The position a token holds; INVALID_ARGUMENT if it is garbled or belongs to another query."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        raise QueryRefused("INVALID_ARGUMENT", "continue: not a token this API gave") from None
    if not isinstance(data, dict) or data.get("q") != query:
        raise QueryRefused(
            "INVALID_ARGUMENT", "continue: the token belongs to another query (same filters, sort and view needed)"
        )
    return data


def offset_of(position: dict[str, Any]) -> int:
    offset = position.get("o")
    if not isinstance(offset, int) or offset < 0:
        raise QueryRefused("INVALID_ARGUMENT", "continue: not a token this API gave")
    return offset


def key_of(position: dict[str, Any]) -> tuple[str, str, str, str]:
    key = position.get("k")
    if not (isinstance(key, list) and len(key) == 4 and all(isinstance(k, str) for k in key)):
        raise QueryRefused("INVALID_ARGUMENT", "continue: not a token this API gave")
    return key[0], key[1], key[2], key[3]
