"""A third party adds a kind (here a custom resource) with nothing but a plugin."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Iterable
from typing import Any

from navigator import hookimpl, plugin_manager
from navigator.config.edge import EdgeConfig
from navigator.edge.once import collect_once
from navigator.interfaces import Collector
from navigator.kubesim import KubeSim
from navigator.resource import Resource


def widget_plugin() -> types.ModuleType:
    """A plugin module as a third party would write it, built here instead of installed."""
    module = types.ModuleType("acme_widgets")

    def to_resource(obj: dict[str, Any]) -> Resource:
        meta = obj.get("metadata") or {}
        return Resource(
            kind="widgets",
            namespace=meta.get("namespace", ""),
            name=meta.get("name", ""),
            uid=meta.get("uid", ""),
            resource_version=meta.get("resourceVersion", ""),
            labels=meta.get("labels") or {},
            data={"size": (obj.get("spec") or {}).get("size"), "color": (obj.get("spec") or {}).get("color")},
        )

    @hookimpl
    def navigator_collectors() -> Iterable[Collector]:
        return [Collector(name="widgets", api_version="acme.example.com/v1", plural="widgets", to_resource=to_resource)]

    module.navigator_collectors = navigator_collectors  # type: ignore[attr-defined]
    return module


def test_custom_resource_collected_end_to_end(kubesim: KubeSim) -> None:
    kubesim.register_kind("acme.example.com", "v1", "Widget", "widgets")
    for i, color in enumerate(["red", "green", "blue"]):
        kubesim.create(
            {
                "apiVersion": "acme.example.com/v1",
                "kind": "Widget",
                "metadata": {"name": f"w{i}", "namespace": "default", "labels": {"color": color}},
                "spec": {"size": i + 1, "color": color},
            }
        )
    pm = plugin_manager.load_plugins({"collectors": ["services"], "serializers": ["protobuf"]})
    pm.register(widget_plugin())
    config = EdgeConfig.model_validate(
        {
            "cluster": {"id": "sim"},
            "kubernetes": {"kubeconfig": str(kubesim.kubeconfig_path), "context": kubesim.context, "page_size": 2},
            "plugins": {"collectors": ["services", "widgets"], "serializers": ["protobuf"]},
        }
    )
    report = asyncio.run(collect_once(config, pm=pm))
    assert report.exit_code == 0
    widgets = sorted(report.results["widgets"].resources, key=lambda r: r.name)
    assert [(w.name, w.labels, w.data) for w in widgets] == [
        ("w0", {"color": "red"}, {"size": 1, "color": "red"}),
        ("w1", {"color": "green"}, {"size": 2, "color": "green"}),
        ("w2", {"color": "blue"}, {"size": 3, "color": "blue"}),
    ]
    assert all(w.uid and w.resource_version for w in widgets)
    assert report.state_bytes["widgets"] > 0
    assert len(report.results["services"].resources) == kubesim.count("services")
