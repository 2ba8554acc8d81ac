"""Loading objects as given: upstream fixtures, lists, multi-document YAML, unknown kinds."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from navigator.kubesim import KubeSim, LoadError, loader

pytestmark = pytest.mark.timeout(60)

PATHS = {
    "Pod": "/api/v1/namespaces/{ns}/pods/{name}",
    "Service": "/api/v1/namespaces/{ns}/services/{name}",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps/{name}",
    "EndpointSlice": "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices/{name}",
    "Node": "/api/v1/nodes/{name}",
    "Namespace": "/api/v1/namespaces/{name}",
}


def _get(sim: KubeSim, path: str) -> Any:
    with urllib.request.urlopen(sim.url + path, timeout=10) as r:
        return json.loads(r.read())


@pytest.mark.parametrize("prefix", ["HEAD", "v1.30.0", "realistic"])
def test_upstream_fixtures_are_served_exactly(
    prefix: str, upstream_fixtures: Path, make_sim: Any
) -> None:
    sim = make_sim()
    files = sorted(p for p in upstream_fixtures.iterdir() if p.name.startswith(prefix + ".")
                   and p.suffix in (".json", ".yaml"))
    assert files
    for f in files:
        (want,) = loader.read(f)
        before_rv = int(sim.resource_version)
        assert sim.load(f) == 1
        meta = want["metadata"]
        got = _get(sim, PATHS[want["kind"]].format(ns=meta.get("namespace", ""), name=meta["name"]))
        # every field as given, including status, uid and resourceVersion; only absent
        # server-set metadata is filled in
        filled = {k for k in ("uid", "resourceVersion", "creationTimestamp") if k not in meta}
        assert {k: v for k, v in got["metadata"].items() if k not in filled} == meta, f.name
        assert {k: v for k, v in got.items() if k != "metadata"} == \
            {k: v for k, v in want.items() if k != "metadata"}, f.name
        if f.suffix == ".json":
            assert got == json.loads(f.read_text())
        rv = str(got["metadata"]["resourceVersion"])
        assert int(sim.resource_version) > before_rv
        if "resourceVersion" in meta and rv.isdigit():
            assert int(sim.resource_version) > int(rv)  # the global rv moved past the loaded one


def test_placeholder_resource_versions_are_listed(upstream_fixtures: Path, make_sim: Any) -> None:
    sim = make_sim(pods=3)
    sim.load(upstream_fixtures / "HEAD.core.v1.Pod.json")
    body = _get(sim, "/api/v1/namespaces/namespaceValue/pods")
    assert [i["metadata"]["resourceVersion"] for i in body["items"]] == ["resourceVersionValue"]
    assert body["metadata"]["resourceVersion"].isdigit()
    assert len(_get(sim, "/api/v1/pods")["items"]) == 4
    assert _get(sim, "/api/v1/pods?fieldSelector=status.phase%3DphaseValue")["items"][0]["metadata"]["name"] == \
        "nameValue"


def test_realistic_yaml_keeps_strings(upstream_fixtures: Path, make_sim: Any) -> None:
    sim = make_sim()
    sim.load(upstream_fixtures / "realistic.apiserver-fieldmanager.core.v1.Pod.yaml")
    pod = _get(sim, "/api/v1/namespaces/default/pods/some-name")
    raw = yaml.load((upstream_fixtures / "realistic.apiserver-fieldmanager.core.v1.Pod.yaml").read_text(),
                    Loader=yaml.BaseLoader)
    assert pod["status"]["startTime"] == raw["status"]["startTime"]  # a string, not a parsed datetime
    assert pod["spec"] == json.loads(json.dumps(yaml.safe_load(json.dumps(pod["spec"]))))
    assert pod["metadata"]["uid"] and pod["metadata"]["resourceVersion"].isdigit()  # filled in: absent upstream


def test_lists_multidoc_and_unknown_kinds(tmp_path: Path, make_sim: Any) -> None:
    lst = tmp_path / "list.json"
    lst.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMapList", "items": [
        {"metadata": {"name": "a", "namespace": "default", "resourceVersion": "900"}, "data": {"x": "1"}},
        {"metadata": {"name": "b", "namespace": "default"}}]}))
    docs = tmp_path / "docs.yaml"
    docs.write_text(
        "apiVersion: example.io/v1\nkind: Gadget\nmetadata: {name: g1, namespace: default}\nspec: {size: 2}\n"
        "---\n"
        "apiVersion: example.io/v1\nkind: Gizmo\nmetadata: {name: z1}\n"
        "---\n"
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Namespace\n  metadata: {name: extra}\n"
    )
    sim = make_sim(load=[lst, docs])
    assert int(sim.resource_version) > 900
    assert sim.get("configmaps", "default", "a")["metadata"]["resourceVersion"] == "900"
    assert _get(sim, "/api/v1/namespaces/default/configmaps/b")["kind"] == "ConfigMap"
    gadgets = _get(sim, "/apis/example.io/v1/namespaces/default/gadgets")
    assert gadgets["kind"] == "GadgetList" and gadgets["items"][0]["spec"] == {"size": 2}
    assert _get(sim, "/apis/example.io/v1/gizmos/z1")["metadata"]["name"] == "z1"  # cluster-scoped
    resources = {r["name"]: r for r in _get(sim, "/apis/example.io/v1")["resources"]}
    assert resources["gadgets"]["namespaced"] and not resources["gizmos"]["namespaced"]
    assert sim.get("namespaces", None, "extra") is not None


def test_bad_files(tmp_path: Path) -> None:
    sim = KubeSim()
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Pod\nmetadata: {name: x}\n")
    with pytest.raises(LoadError, match="apiVersion"):
        sim.load(bad)
    with pytest.raises(LoadError, match="No such file"):
        sim.load(tmp_path / "missing.json")
    bad.write_text("{{{ nope")
    with pytest.raises(LoadError):
        sim.load(bad)
