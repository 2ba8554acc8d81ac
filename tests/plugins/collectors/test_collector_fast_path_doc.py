"""The fast-path example on "Writing a plugin" works: same records as the page's dict collector, end to end."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import orjson
import pytest
from navigator_plugins.serializers.json import JsonSerializer

from navigator.config.edge import KubernetesSection
from navigator.edge.collect import KindCollector
from navigator.edge.kube import KubeClient
from navigator.resource import Resource

PAGE = Path(__file__).resolve().parents[3] / "docs" / "writing-a-plugin.md"
TITLED_BLOCK = re.compile(r'^```[\w+-]*\s+title="(?P<title>[^"]+)"[^\n]*\n(?P<body>.*?)^```\s*$', re.M | re.S)


def page_module(title: str, tmp_path: Path) -> ModuleType:
    """The page's code block titled ``title``, imported as a module."""
    bodies = [m["body"] for m in TITLED_BLOCK.finditer(PAGE.read_text()) if m["title"] == title]
    assert len(bodies) == 1, f"{PAGE.name} should have one block titled {title}"
    name = f"doc_{Path(title).parent.name}_{Path(title).stem}".replace("-", "_")
    path = tmp_path / f"{name}.py"
    path.write_text(bodies[0])
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def fast(tmp_path: Path) -> ModuleType:
    return page_module("widgets_fast.py", tmp_path)


@pytest.fixture
def plain(tmp_path: Path) -> ModuleType:
    return page_module("navigator-plugin-widgets/navigator_plugin_widgets/__init__.py", tmp_path)


def widget(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "example.com/v1",
        "kind": "Widget",
        "metadata": {"name": name, "namespace": "shop"},
        **fields,
    }


def record(r: Resource) -> bytes:
    return orjson.dumps([r.kind, r.namespace, r.name, r.uid, r.resource_version, r.labels, r.data])


WIDGETS = [
    widget("a", spec={"size": 3, "color": "red", "shape": {"sides": 6}}, status={"ready": True}),
    {**widget("b", spec={"size": 1}, status=None), "metadata": {"name": "b", "uid": "u", "resourceVersion": "4",
                                                               "labels": {"team": "blue"}, "annotations": {"x": "y"}}},
    widget("c"),
    widget("d", status={"ready": False, "conditions": []}),
]  # fmt: skip


def test_the_fast_collector_makes_the_dict_collectors_records(fast: ModuleType, plain: ModuleType) -> None:
    assert fast.WIDGETS.item_type is fast.Widget
    for obj in WIDGETS:
        expected = record(plain.to_resource(obj))
        assert record(fast.WIDGETS.convert(obj)) == expected
        assert record(fast.to_resource(msgspec.json.decode(orjson.dumps(obj), type=fast.Widget))) == expected
    assert fast.WIDGETS.convert({"metadata": {"name": "w1"}, "spec": {"size": 3}}).data["size"] == 3


def test_the_edge_collects_with_it_and_skips_what_does_not_fit(
    fast: ModuleType, kubesim_factory: Any
) -> None:
    sim = kubesim_factory(pods=1, services=1)
    sim.register_kind("example.com", "v1", "Widget", "widgets")
    for obj in WIDGETS:
        sim.create(obj)
    sim.create(widget("odd", spec={"size": {"big": True}}))
    sim.create(widget("lenient", spec={"size": "7"}))  # a page re-read leniently takes "7" for an int
    section = KubernetesSection(kubeconfig=sim.kubeconfig_path, context=sim.context, page_size=2)
    collector = KindCollector(fast.WIDGETS, KubeClient.from_config(section), section, JsonSerializer())
    result = asyncio.run(collector.collect())
    assert result.ok and result.skipped == 1
    sizes = {r.name: r.data["size"] for r in result.resources}
    assert sizes == {"a": 3, "b": 1, "c": None, "d": None, "lenient": 7}
