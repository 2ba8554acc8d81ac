"""The pages of ListResources: labels as the map or as ``labels_json``, whichever the request asks for."""

from __future__ import annotations

import orjson

from navigator.manager.query_service import _pages
from navigator.resource import Resource, StoredResource


def _items() -> list[StoredResource]:
    labels = {"tier": "web", "app": "shop", "é": "x", "A": '"q"'}
    return [
        StoredResource("c", Resource("pods", "n", f"p{i}", f"u{i}", str(i), dict(labels) if i else {}, {"i": i}))
        for i in range(5)
    ]


def test_labels_json_is_sorted_compact_json_and_the_map_stays_empty() -> None:
    for as_json in (True, False):
        records = [r for page in _pages(_items(), 2, as_json, labels_as_json=True) for r in page.resources]
        assert [r.name for r in records] == [f"p{i}" for i in range(5)]
        assert records[0].labels_json == b"{}"
        assert records[1].labels_json == b'{"A":"\\"q\\"","app":"shop","tier":"web","\xc3\xa9":"x"}'
        assert all(not r.labels for r in records)
        if as_json:
            assert [orjson.loads(r.data_json) for r in records] == [{"i": i} for i in range(5)]
        else:
            assert [r.data["i"] for r in records] == list(range(5))


def test_without_labels_as_json_the_labels_are_in_the_map_as_before() -> None:
    """What a client older than ``labels_json`` asks for and reads."""
    for as_json in (True, False):
        pages = list(_pages(_items(), 2, as_json))
        assert [len(p.resources) for p in pages] == [2, 2, 1]
        records = [r for page in pages for r in page.resources]
        assert all(r.labels_json == b"" for r in records)
        assert dict(records[1].labels) == {"tier": "web", "app": "shop", "é": "x", "A": '"q"'}


def test_pages_are_cut_by_bytes_with_labels_json_too() -> None:
    big = [
        StoredResource("c", Resource("pods", "n", f"p{i}", f"u{i}", "1", {"k": "v" * 1000}, {"pad": "x" * 1000}))
        for i in range(10)
    ]
    for labels_as_json in (True, False):
        sizes = [len(p.resources) for p in _pages(big, 500, True, max_bytes=5000, labels_as_json=labels_as_json)]
        assert sizes == [3, 3, 3, 1], labels_as_json


def test_the_first_page_is_small_and_the_later_ones_bigger() -> None:
    """A quick first row, then fewer pages (each costs both ends a hand-over between threads)."""
    items = [StoredResource("c", Resource("pods", "n", f"p{i:02d}", f"u{i}", "1", {}, {})) for i in range(23)]
    for as_json, labels_as_json in ((True, True), (True, False), (False, False)):
        pages = list(_pages(items, 3, as_json, labels_as_json=labels_as_json, later=8))
        assert [len(p.resources) for p in pages] == [3, 8, 8, 4]
        assert [r.name for p in pages for r in p.resources] == [f"p{i:02d}" for i in range(23)]
