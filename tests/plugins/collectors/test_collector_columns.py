"""The built-in collectors declare their tables (columns, short names) over the fields they produce."""

from __future__ import annotations

import pytest
from navigator_plugins.collectors import endpointslices, pods, services

from navigator.client.columns import parse_path
from navigator.manager.query_service import installed_kinds, kind_infos
from navigator.plugin import Collector, Column

SAMPLES = {
    pods: {"metadata": {"name": "p", "namespace": "n"}, "spec": {}, "status": {}},
    services: {"metadata": {"name": "s", "namespace": "n"}, "spec": {"ports": [{"port": 80}]}},
    endpointslices: {"metadata": {"name": "e", "namespace": "n"}, "addressType": "IPv4", "endpoints": []},
}


@pytest.mark.parametrize("module", list(SAMPLES), ids=lambda m: m.__name__.rsplit(".", 1)[-1])
def test_every_column_shows_a_field_the_collector_produces(module: object) -> None:
    collector: Collector = module.COLLECTOR  # type: ignore[attr-defined]
    data = collector.convert(SAMPLES[module]).data  # type: ignore[index]
    assert collector.columns and collector.short_names
    for column in collector.columns:
        first = parse_path(column.path)[0]
        assert first in data, f"{collector.name}: column {column.name} shows {column.path}, not in {sorted(data)}"
    assert len([c for c in collector.columns if not c.wide]) <= 4, "the default table must stay narrow"


def test_bad_columns_are_refused_when_declared() -> None:
    with pytest.raises(ValueError, match="is not a field path"):
        Column("ip", "pod_ip")
    with pytest.raises(ValueError, match="type 'quantity' is not one of"):
        Column("cpu", ".cpu", type="quantity")
    with pytest.raises(ValueError, match="the name is empty"):
        Column(" ", ".x")
    with pytest.raises(TypeError, match="columns must be Column records"):
        Collector("x", "v1", "xs", to_resource=lambda o: o, columns=({"name": "a"},))  # type: ignore[arg-type]


def test_a_collector_without_columns_still_works() -> None:
    """Collectors written before columns existed: no columns, no short names, described all the same."""
    plain = Collector("gadgets", "example.com/v1", "gadgets", to_resource=lambda o: o)
    [info] = kind_infos([plain])
    assert (info.kind, list(info.short_names), list(info.columns), info.namespaced) == ("gadgets", [], [], True)


def test_the_manager_describes_the_installed_collectors() -> None:
    described = {k.kind: k for k in installed_kinds()}
    assert {"pods", "services", "endpointslices"} <= set(described)
    assert list(described["pods"].short_names) == ["po"]
    assert [(c.name, c.path, c.wide) for c in described["pods"].columns][:2] == [
        ("phase", ".phase", False), ("ready", ".ready", False)
    ]  # fmt: skip
