"""Discovery through real installed distributions, built and installed by the test."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from navigator.errors import PluginError
from navigator.plugin_manager import GROUPS, collectors, discover, load_plugins, serializers


def build_distribution(
    root: Path, dist: str, package: str, entry_points: dict[str, dict[str, str]], code: str
) -> Path:
    """Write a tiny plugin project under root/dist and return its directory."""
    project = root / dist
    (project / package).mkdir(parents=True)
    (project / package / "__init__.py").write_text(textwrap.dedent(code))
    groups = "\n".join(
        f'[project.entry-points."{group}"]\n'
        + "\n".join(f'{name} = "{target}"' for name, target in eps.items())
        for group, eps in entry_points.items()
    )
    (project / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{dist}"
            version = "1.2.3"

            """
        )
        + groups
        + f'\n\n[tool.setuptools]\npackages = ["{package}"]\n'
    )
    return project


def install(projects: list[Path], target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), *map(str, projects)],
        check=True,
        capture_output=True,
    )  # fmt: skip


def run_with(target: Path, code: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(target)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env
    )


WIDGETS = """
    from navigator import hookimpl
    from navigator.interfaces import Collector
    from navigator.resource import Resource

    def widget(obj):
        meta = obj["metadata"]
        return Resource(kind="widgets", namespace=meta.get("namespace", ""), name=meta["name"],
                        uid=meta.get("uid", ""), resource_version=meta.get("resourceVersion", ""),
                        labels=meta.get("labels") or {}, data={"size": obj.get("spec", {}).get("size")})

    @hookimpl
    def navigator_collectors():
        return [Collector(name="widgets", api_version="example.com/v1", plural="widgets", to_resource=widget)]
"""


@pytest.fixture(scope="module")
def third_party(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dists")
    good = build_distribution(
        root, "navigator-plugin-widgets", "navigator_plugin_widgets",
        {"navigator.collectors": {"widgets": "navigator_plugin_widgets"}}, WIDGETS,
    )  # fmt: skip
    broken = build_distribution(
        root, "navigator-plugin-broken", "navigator_plugin_broken",
        {"navigator.sinks": {"broken": "navigator_plugin_broken"}},
        "raise RuntimeError('kaboom at import')\n",
    )  # fmt: skip
    clash = build_distribution(
        root, "navigator-plugin-clash", "navigator_plugin_clash",
        {"navigator.collectors": {"pods": "navigator_plugin_clash"}}, "",
    )  # fmt: skip
    target = root / "site"
    install([good, broken, clash], target)
    return target


def test_builtin_plugins_come_through_entry_points() -> None:
    found = {(p.group, p.name): p for p in discover()}
    for name in ("services", "endpointslices", "pods"):
        assert found[("navigator.collectors", name)].distribution == "navigator"
    for key in [
        ("navigator.serializers", "protobuf"),
        ("navigator.serializers", "json"),
        ("navigator.transports", "grpc"),
        ("navigator.storage", "sqlite"),
        ("navigator.sinks", "log"),
    ]:
        assert key in found
    assert {p.group for p in found.values()} == set(GROUPS.values())


def test_unknown_name_lists_installed_names() -> None:
    with pytest.raises(PluginError) as info:
        load_plugins({"serializers": ["protobuf", "yaml"]})
    message = str(info.value)
    assert "'yaml' is not installed" in message
    assert "json" in message and "protobuf" in message


def test_loading_registers_only_enabled_names() -> None:
    pm = load_plugins({"serializers": ["json"]})
    assert list(serializers(pm)) == ["json"]
    with pytest.raises(PluginError, match="offered: json"):
        serializers(pm, ["protobuf"])


def test_each_manager_is_independent() -> None:
    first = load_plugins({"serializers": ["json"]})
    second = load_plugins({"serializers": ["protobuf"]})
    assert list(serializers(first)) == ["json"]
    assert list(serializers(second)) == ["protobuf"]


def test_third_party_collector_is_discovered_and_loaded(third_party: Path) -> None:
    result = run_with(
        third_party,
        """
        import orjson
        from navigator.plugin_manager import collectors, discover, load_plugins
        info = [p.as_dict() for p in discover({"collectors": ["widgets"]}) if p.name == "widgets"]
        pm = load_plugins({"collectors": ["widgets", "services"]})
        found = collectors(pm, ["widgets"])
        obj = {"metadata": {"name": "w1", "namespace": "ns", "uid": "u1", "resourceVersion": "5"},
               "spec": {"size": 3}}
        print(orjson.dumps({"info": info, "path": found["widgets"].collection_path,
                            "data": found["widgets"].to_resource(obj).data}).decode())
        """,
    )
    assert result.returncode == 0, result.stderr
    out = orjson.loads(result.stdout)
    assert out["info"] == [
        {
            "group": "navigator.collectors",
            "name": "widgets",
            "distribution": "navigator-plugin-widgets",
            "version": "1.2.3",
            "enabled": True,
            "target": "navigator_plugin_widgets",
        }
    ]
    assert out["path"] == "/apis/example.com/v1/widgets"
    assert out["data"] == {"size": 3}


def test_broken_plugin_names_distribution_and_exception(third_party: Path) -> None:
    result = run_with(
        third_party,
        """
        from navigator.plugin_manager import load_plugins
        load_plugins({"serializers": ["json"]})   # not enabled: the broken sink is never imported
        print("ok")
        load_plugins({"sinks": ["broken"]})
        """,
    )
    assert result.stdout.strip() == "ok"
    assert "navigator-plugin-broken" in result.stderr
    assert "RuntimeError: kaboom at import" in result.stderr


def test_duplicate_names_in_a_group_are_an_error(third_party: Path) -> None:
    result = run_with(
        third_party,
        """
        from navigator.plugin_manager import load_plugins
        load_plugins({"collectors": ["pods"]})
        """,
    )
    assert result.returncode != 0
    assert "'pods' is provided more than once" in result.stderr
    assert "navigator-plugin-clash" in result.stderr


def test_plugins_list_json_from_cli(third_party: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(third_party)}
    result = subprocess.run(
        [sys.executable, "-m", "navigator.cli.main", "plugins", "list", "-o", "json"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = orjson.loads(result.stdout)
    assert all(set(r) >= {"group", "name", "distribution", "version", "enabled"} for r in rows)
    names = {(r["group"], r["name"]): r for r in rows}
    assert names[("navigator.collectors", "pods")]["enabled"] is True
    assert names[("navigator.collectors", "widgets")]["enabled"] is False
    assert names[("navigator.storage", "sqlite")]["enabled"] is True


def test_collectors_unknown_kind_is_clear() -> None:
    with pytest.raises(PluginError, match="unknown plugin kind"):
        load_plugins({"widgets": ["x"]})
    assert collectors(load_plugins({})) == {}
