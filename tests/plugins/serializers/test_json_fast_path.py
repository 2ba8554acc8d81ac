"""The json serializer's fast check never lets through a payload the full parse refuses."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from navigator_plugins.serializers.json import JsonSerializer

SERIALIZER = JsonSerializer()

#: Valid objects, then bytes spliced in: the mistakes and the values only the full parse judges.
SEED = b'{"a":1,"b":[1,2,{"c":"d"}],"e":null,"f":true,"g":1.5e10,"h":"x\\"y\\\\z\\u0041"}'
SPLICES = [
    b"1e999", b"-1E400", b"99999999999999999999999", b'"\\ud800"', b'"\\uDC00"', b"NaN", b"Infinity",
    b'"\x01"', b"01", b"1.", b".5", b'"\\x"', b",", b"[", b"}", b"\xc3", b"\xff", b"\x00", b" ",
]  # fmt: skip


def full_parse_accepts(payload: bytes) -> bool:
    try:
        return isinstance(orjson.loads(payload), dict)
    except orjson.JSONDecodeError:
        return False


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SEED)), st.sampled_from(SPLICES) | st.binary(max_size=3)), max_size=4))
def test_the_fast_check_agrees_with_the_full_parse(edits: list[tuple[int, bytes]]) -> None:
    payload = SEED
    for position, piece in edits:
        payload = payload[:position] + piece + payload[position:]
    try:
        SERIALIZER.to_json(payload)
    except ValueError:
        return  # refused: whatever the path, nothing is stored
    assert full_parse_accepts(payload), payload


@pytest.mark.parametrize(
    "payload",
    [b'{"a":1e999}', b'{"a":-2E308}', b'{"a":"\\ud800"}', b'{"a":1,}', b"[1]", b'{"a":"\xff"}', b'{"a":NaN}'],
)
def test_payloads_only_the_full_parse_judges_are_refused(payload: bytes) -> None:
    with pytest.raises(ValueError):
        SERIALIZER.to_json(payload)


def test_a_usual_payload_is_stored_as_sent() -> None:
    payload = b'{"phase":"Running","ready":true,"restarts":3,"ip":"10.0.0.1","caf\xc3\xa9":[1.5,null]}'
    assert SERIALIZER.to_json(payload) is payload
