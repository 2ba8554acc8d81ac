"""Pure functions: selector grammar, patches, continue tokens, human durations."""

from __future__ import annotations

import pytest

from navigator.kubesim.errors import ApiError
from navigator.kubesim.patch import json_patch, merge_patch, strategic_merge_patch
from navigator.kubesim.selectors import FieldSelector, parse_label_selector
from navigator.kubesim.server import _accept, decode_continue, encode_continue
from navigator.kubesim.tables import human_duration

LABELS = {"app": "web", "tier": "front", "n": "5", "empty": ""}


@pytest.mark.parametrize(("sel", "want"), [
    ("", True),
    ("app=web", True),
    ("app==web,tier=front", True),
    ("app=db", False),
    ("app!=db", True),
    ("missing!=x", True),
    ("app in (web, db)", True),
    ("app notin (web)", False),
    ("missing notin (x)", True),
    ("tier", True),
    ("!tier", False),
    ("!missing", True),
    ("n>4", True),
    ("n<5", False),
    ("empty=", True),
    ("app in (db),tier", False),
    ("  app = web , tier in (front,back) ", True),
    ("example.com/role", False),
])
def test_label_selector(sel: str, want: bool) -> None:
    assert parse_label_selector(sel).matches(LABELS) is want


@pytest.mark.parametrize("bad", ["app in (", "a=b=c", ",", "app in ()", "n>x", "=x"])
def test_bad_label_selectors(bad: str) -> None:
    with pytest.raises(ApiError) as exc:
        parse_label_selector(bad)
    assert exc.value.code == 400
    assert "unable to parse requirement: " in str(exc.value)


def test_field_selector() -> None:
    fields = {"metadata.name": "a,b", "status.phase": "Running"}
    sel = FieldSelector.parse(r"metadata.name=a\,b,status.phase!=Failed", lambda f: True)
    assert sel.matches(lambda f: fields.get(f, ""))
    assert FieldSelector.parse("status.phase==Running", lambda f: True).matches(lambda f: fields.get(f, ""))
    assert not FieldSelector.parse("status.phase=Pending", lambda f: True).matches(lambda f: fields.get(f, ""))
    with pytest.raises(ApiError, match=r"field label not supported: spec\.x"):
        FieldSelector.parse("spec.x=1", lambda f: f.startswith("metadata"))


def test_merge_patches() -> None:
    doc = {"a": {"b": 1, "c": 2}, "l": [1, 2], "k": "v"}
    assert merge_patch(doc, {"a": {"b": None, "d": 3}, "l": [3], "k": None}) == {"a": {"c": 2, "d": 3}, "l": [3]}
    pod = {"spec": {"containers": [{"name": "a", "image": "x", "ports": [{"containerPort": 80}]},
                                   {"name": "b", "image": "y"}]},
           "metadata": {"finalizers": ["f1"]}}
    out = strategic_merge_patch(pod, {
        "spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "new"}],
                 "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
        "metadata": {"finalizers": ["f2"]},
    })
    assert [c["name"] for c in out["spec"]["containers"]] == ["a", "b", "c"]
    assert out["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]
    assert out["spec"]["containers"][1]["image"] == "z"
    assert out["metadata"]["finalizers"] == ["f1", "f2"]
    deleted = strategic_merge_patch(pod, {"spec": {"containers": [{"name": "a", "$patch": "delete"}]}})
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["b"]
    assert pod["spec"]["containers"][0]["name"] == "a"  # inputs untouched


def test_json_patch() -> None:
    doc = {"a": [1, 2], "b": {"c": 1}}
    out = json_patch(doc, [
        {"op": "add", "path": "/a/-", "value": 3},
        {"op": "replace", "path": "/b/c", "value": 2},
        {"op": "move", "from": "/b/c", "path": "/d"},
        {"op": "copy", "from": "/a", "path": "/e"},
        {"op": "remove", "path": "/a/0"},
        {"op": "test", "path": "/d", "value": 2},
    ])
    assert out == {"a": [2, 3], "b": {}, "d": 2, "e": [1, 2, 3]}
    assert doc == {"a": [1, 2], "b": {"c": 1}}
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "test", "path": "/a/0", "value": 9}])
    with pytest.raises(ApiError):
        json_patch(doc, [{"op": "remove", "path": "/nope"}])


def test_continue_tokens() -> None:
    tok = encode_continue(42, "ns/name")
    assert decode_continue(tok) == (42, "ns/name")
    for bad in ("", "x", "e30", encode_continue(0, "a")):
        with pytest.raises(ApiError) as exc:
            decode_continue(bad)
        assert exc.value.code == 410 and exc.value.reason == "Expired"


def test_accept_header() -> None:
    kubectl = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
    assert _accept(kubectl) == ("table", "v1")
    assert _accept("application/json") == ("plain", "v1")
    assert _accept("application/vnd.kubernetes.protobuf,application/json") == ("plain", "v1")
    assert _accept("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1") == ("partial", "v1")


@pytest.mark.parametrize(("secs", "want"), [
    (5, "5s"), (119, "119s"), (150, "2m30s"), (600, "10m"), (3 * 3600 + 60, "3h1m"), (9 * 3600, "9h"),
    (3 * 86400 + 3600, "3d1h"), (30 * 86400, "30d"), (800 * 86400, "2y70d"), (-5, "<invalid>"),
])
def test_human_duration(secs: int, want: str) -> None:
    assert human_duration(secs) == want


def test_fixtures_reach_any_suite_through_the_pytest11_entry_point(request: pytest.FixtureRequest) -> None:
    import importlib.metadata

    eps = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert eps.get("navigator-kubesim") == "navigator.kubesim.pytest_plugin"
    # Registered by the entry point, not by a conftest: the fixture resolves here.
    assert callable(request.getfixturevalue("kubesim_factory"))
