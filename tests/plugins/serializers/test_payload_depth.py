"""How deeply a payload may nest: counted on the JSON the manager stores, whatever the serializer."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from navigator_plugins.serializers.json import JsonSerializer
from navigator_plugins.serializers.protobuf import ProtobufSerializer

from navigator.interfaces.serializer import MAX_PAYLOAD_DEPTH, json_depth_problem, payload_json


def nested(depth: int, leaf: Any = 1) -> Any:
    """``depth`` levels, objects and arrays in turn; the top one an object."""
    value = leaf
    for level in range(depth, 0, -1):
        value = {"k": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize("depth", [1, 2, 5, MAX_PAYLOAD_DEPTH])
def test_payloads_up_to_the_limit_pass(depth: int) -> None:
    data = orjson.dumps(nested(depth))
    assert json_depth_problem(data) is None
    assert payload_json(JsonSerializer())(data) == data


@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH + 1, 254, 1000, 100_000])
def test_deeper_payloads_are_a_value_error_naming_the_limit(depth: int) -> None:
    data = b'{"k":' * (depth - 1) + b"{}" + b"}" * (depth - 1)
    with pytest.raises(ValueError, match=f"more than {MAX_PAYLOAD_DEPTH} levels deep|too deeply"):
        payload_json(JsonSerializer())(data)


@pytest.mark.parametrize(
    "value",
    [
        {"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["},  # brackets inside strings are text
        {"a": "]]]]" * 20, "b": [{"c": "{{{{" * 20}]},
        {"a\\\"[": "\\" + "[" * 60, "b": ["\"{" * 40]},  # escapes, quotes and brackets in strings
        {"list": [{"x": [1]} for _ in range(100)]},  # many brackets, shallow
    ],
)
def test_brackets_in_strings_or_side_by_side_do_not_count_as_depth(value: dict[str, Any]) -> None:
    assert json_depth_problem(orjson.dumps(value), limit=5) is None


def test_every_level_counts_even_where_objects_and_arrays_alternate() -> None:
    # Removing innermost pairs must take one level per pass: ``[{}]`` is two.
    for depth in range(1, 12):
        data = orjson.dumps(nested(depth, leaf={}))
        assert json_depth_problem(data, limit=depth) is not None
        assert json_depth_problem(data, limit=depth + 1) is None


def test_a_protobuf_payload_is_held_to_the_same_limit() -> None:
    serializer = ProtobufSerializer()
    convert = payload_json(serializer)
    ok = {"k": nested(MAX_PAYLOAD_DEPTH - 1)}
    assert orjson.loads(convert(serializer.encode(ok))) == orjson.loads(orjson.dumps(ok))
    deep = {"k": {"k": nested(MAX_PAYLOAD_DEPTH - 1)}}
    with pytest.raises(ValueError, match="levels deep"):
        convert(serializer.encode(deep))
