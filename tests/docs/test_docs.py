"""The documentation cannot rot: its examples are built, installed, loaded and validated.

The plugin on "Writing a plugin" is extracted file by file, installed with pip
as a real distribution and discovered through entry points in a fresh process;
the YAML examples are loaded with the real config loaders; the generated
configuration reference is checked against the models; and the site builds with
``mkdocs build --strict``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any, get_args, get_origin

import orjson
import pytest
from pydantic import BaseModel

from navigator import hookspecs
from navigator.config import EdgeConfig, ManagerConfig, load_edge_config, load_manager_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PLUGIN_PAGE = DOCS / "writing-a-plugin.md"
EXAMPLE_DIST = "navigator-plugin-widgets"

#: A fenced block whose opening line carries ``title="..."`` (mkdocs-material's file-name tab).
TITLED_BLOCK = re.compile(r'^```[\w+-]*\s+title="(?P<title>[^"]+)"[^\n]*\n(?P<body>.*?)^```\s*$', re.M | re.S)


def titled_blocks(page: Path) -> list[tuple[str, str]]:
    return [(m["title"], m["body"]) for m in TITLED_BLOCK.finditer(page.read_text())]


def load_hook_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "navigator_docs_config_reference", DOCS / "_hooks" / "config_reference.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference() -> ModuleType:
    return load_hook_module()


# --- the example plugin ------------------------------------------------------------------------


def write_example_plugin(root: Path) -> Path:
    """Write every file of the example distribution, exactly as the page shows it."""
    files = [
        (title, body) for title, body in titled_blocks(PLUGIN_PAGE) if title.startswith(f"{EXAMPLE_DIST}/")
    ]
    names = {title for title, _ in files}
    assert {f"{EXAMPLE_DIST}/pyproject.toml", f"{EXAMPLE_DIST}/navigator_plugin_widgets/__init__.py"} <= names
    for title, body in files:
        path = root / title
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
    return root / EXAMPLE_DIST


@pytest.fixture(scope="module")
def example_plugin(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the project directory, a --target directory it was pip-installed into)."""
    root = tmp_path_factory.mktemp("example")
    project = write_example_plugin(root)
    target = root / "site-packages"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(project)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return project, target


def run_python(code: str, pythonpath: Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_example_plugin_is_discovered_and_collects(example_plugin: tuple[Path, Path]) -> None:
    _project, target = example_plugin
    result = run_python(
        """
        import orjson
        from navigator.plugin_manager import collectors, discover, load_plugins

        found = [p.as_dict() for p in discover({"collectors": ["widgets"]}) if p.name == "widgets"]
        pm = load_plugins({"collectors": ["services", "endpointslices", "pods", "widgets"]})
        offered = collectors(pm, ["services", "endpointslices", "pods", "widgets"])
        widgets = offered["widgets"]
        obj = {"apiVersion": "example.com/v1", "kind": "Widget",
               "metadata": {"name": "w1", "namespace": "shop", "uid": "u-1", "resourceVersion": "7",
                            "labels": {"team": "blue", "tier": 3}},
               "spec": {"size": 3, "color": "red"}, "status": {"ready": True}}
        odd = {"metadata": {"name": "w2"}, "spec": "not-a-map", "status": None}
        print(orjson.dumps({
            "found": found,
            "order": list(offered),
            "path": widgets.collection_path,
            "labels": widgets.to_resource(obj).labels,
            "data": widgets.to_resource(obj).data,
            "odd": widgets.to_resource(odd).data,
        }).decode())
        """,
        target,
    )
    assert result.returncode == 0, result.stderr
    out = orjson.loads(result.stdout)
    assert out["found"] == [
        {
            "group": "navigator.collectors",
            "name": "widgets",
            "distribution": EXAMPLE_DIST,
            "version": "0.1.0",
            "enabled": True,
            "target": "navigator_plugin_widgets",
        }
    ]
    assert out["order"] == ["services", "endpointslices", "pods", "widgets"]
    assert out["path"] == "/apis/example.com/v1/widgets"
    assert out["labels"] == {"team": "blue", "tier": "3"}
    assert out["data"] == {"size": 3, "color": "red", "ready": True}
    assert out["odd"] == {"size": None, "color": None, "ready": False}


def test_example_plugin_shows_in_plugins_list(example_plugin: tuple[Path, Path]) -> None:
    _project, target = example_plugin
    result = run_python(
        """
        import orjson
        from navigator.plugin_manager import discover
        print(orjson.dumps([p.as_dict() for p in discover()]).decode())
        """,
        target,
    )
    assert result.returncode == 0, result.stderr
    rows = {(p["group"], p["name"]): p for p in orjson.loads(result.stdout)}
    assert rows[("navigator.collectors", "widgets")]["distribution"] == EXAMPLE_DIST
    assert rows[("navigator.collectors", "pods")]["distribution"] == "navigator"


def test_example_plugin_tests_pass(example_plugin: tuple[Path, Path]) -> None:
    """The page's own tests for the plugin run green against the installed plugin."""
    project, target = example_plugin
    tests = sorted((project / "tests").glob("test_*.py"))
    assert tests, "docs/writing-a-plugin.md must show tests for its example plugin"
    env = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(project),
         "-o", "addopts=", *map(str, tests)],
        capture_output=True, text=True, env=env, cwd=project, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_storage_conformance_example_runs(tmp_path: Path) -> None:
    """The page's conformance test, pointed at the built-in sqlite backend, passes the suite."""
    blocks = dict(titled_blocks(PLUGIN_PAGE))
    code = blocks["navigator-plugin-mydb/tests/test_conformance.py"]
    assert 'load_plugins({"storage": ["mydb"]}), "mydb"' in code
    test_file = tmp_path / "test_conformance.py"
    test_file.write_text(code.replace('"mydb"', '"sqlite"'))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-o", "addopts=", str(test_file)],
        capture_output=True, text=True, cwd=tmp_path, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert re.search(r"\b[1-9]\d+ passed", result.stdout), result.stdout[-500:]


def test_example_code_is_lint_clean(tmp_path: Path) -> None:
    if importlib.util.find_spec("ruff") is None:
        pytest.skip("ruff is not installed")
    files = []
    for title, body in titled_blocks(PLUGIN_PAGE):
        if title.endswith(".py"):
            path = tmp_path / title
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
            files.append(str(path))
    # The project's rules, but isolated from its config: in the plugin's own project, `navigator`
    # is a third-party import and `navigator_plugin_widgets` the first-party one.
    rules = [
        "--isolated",
        "--select",
        "E,F,W,I,B,UP,SIM,RUF",
        "--line-length",
        "110",
        "--target-version",
        "py311",
    ]
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *rules, *files],
        capture_output=True, text=True, cwd=tmp_path / EXAMPLE_DIST,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


# --- YAML examples -----------------------------------------------------------------------------

YAML_PAGES = sorted(p for p in DOCS.glob("*.md"))


def yaml_examples() -> list[Any]:
    found: list[Any] = []
    for page in YAML_PAGES:
        for title, body in titled_blocks(page):
            name = Path(title).name
            if name in ("edge.yaml", "manager.yaml"):
                found.append(pytest.param(name, body, id=f"{page.name}:{name}:{len(found)}"))
    return found


@pytest.mark.parametrize(("name", "body"), yaml_examples())
def test_yaml_examples_are_valid_config(name: str, body: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(body)
    if name == "edge.yaml":
        edge = load_edge_config(path, environ={})
        assert edge.cluster.id
    else:
        load_manager_config(path, environ={})


def test_the_pages_show_config_examples() -> None:
    names = [str(p.values[0]) for p in yaml_examples()]
    assert "edge.yaml" in names and "manager.yaml" in names


# --- the generated configuration reference -----------------------------------------------------


def leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every settable key, written the way the reference writes it (``sinks[].plugin``)."""
    keys = []
    for name, field in model.model_fields.items():
        args = [a for a in get_args(field.annotation) if isinstance(a, type)]
        sub = next(
            (c for c in [field.annotation, *args] if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if sub is None:
            keys.append(f"{prefix}{name}")
        elif get_origin(field.annotation) is list:
            keys += leaf_keys(sub, f"{prefix}{name}[].")
        else:
            keys += leaf_keys(sub, f"{prefix}{name}.")
    return keys


@pytest.mark.parametrize(("which", "model"), [("edge", EdgeConfig), ("manager", ManagerConfig)])
def test_reference_lists_every_key(reference: ModuleType, which: str, model: type[BaseModel]) -> None:
    text = reference.render(which)
    keys = {row.key for row in reference.walk(model)}
    for key in leaf_keys(model):
        assert key in keys, key
        assert f"`{key}" in text, key


def test_reference_shows_defaults_as_users_write_them(reference: ModuleType) -> None:
    rows = {row.key: row for row in reference.walk(EdgeConfig)}
    assert rows["sync.interval"].default == "`30s`"
    assert rows["sync.interval"].type.startswith("duration")
    assert rows["sync.adaptive.max_interval"].default == "`5m`"
    assert rows["manager.max_message_size"].default == "`64Mi`"
    assert rows["manager.max_message_size"].type == "size (≥ 64Ki)"
    assert rows["cluster.id"].default == "**required**"
    # A parent's default_factory overrides the section class's own defaults.
    assert rows["kubernetes.retry.initial"].default == "`500ms`"
    assert rows["manager.reconnect.initial"].default == "`1s`"
    assert rows["plugins.collectors"].default == "`[services, endpointslices, pods]`"
    manager = {row.key: row for row in reference.walk(ManagerConfig)}
    assert manager["grace_period"].default == "`30s`"
    assert manager["storage.options"].default == "`{path: navigator.db}`"
    assert manager["auth"].type == "section, optional"
    assert "sinks[].plugin" in manager


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30.0, "30s"), (300.0, "5m"), (3600.0, "1h"), (0.5, "500ms"), (90.0, "90s"), (0.0, "0s")],
)
def test_durations_read_back(reference: ModuleType, seconds: float, text: str) -> None:
    from navigator.config.types import parse_duration

    assert reference.format_duration(seconds) == text
    assert parse_duration(text) == seconds


def test_documented_environment_variables_work(reference: ModuleType, tmp_path: Path) -> None:
    edge_file = tmp_path / "edge.yaml"
    edge_file.write_text("cluster: {id: sim-1}\nmanager: {token: from-file}\n")
    manager_file = tmp_path / "manager.yaml"
    manager_file.write_text("storage: {plugin: sqlite, options: {path: x.db}}\n")
    loaders = {"edge": (load_edge_config, edge_file), "manager": (load_manager_config, manager_file)}
    for which, examples in reference.ENV_EXAMPLES.items():
        _model, _filename, prefix = reference.MODELS[which]
        load, path = loaders[which]
        for key, value in examples:
            config = load(path, environ={reference.env_name(prefix, key): value})
            node: Any = config.model_dump()
            for part in key.split("."):
                node = node[part]
            assert str(node) == value, key
    config = load_manager_config(
        manager_file, environ={reference.AUTH_TOKENS_VARIABLE: "production-east=change-me,staging=t2"}
    )
    assert config.auth is not None
    assert config.auth.tokens == {"production-east": "change-me", "staging": "t2"}
    assert "NAVIGATOR_EDGE__MANAGER__TOKEN" in reference.render("environment")


def test_unknown_marker_is_an_error(reference: ModuleType) -> None:
    with pytest.raises(ValueError, match="unknown config-reference marker 'edgy'"):
        reference.replace_markers("<!-- config-reference: edgy -->", "configuration.md")
    assert "<!--" not in reference.replace_markers("<!-- config-reference: manager -->")


# --- README ------------------------------------------------------------------------------------


def test_readme_gives_the_two_commands_and_live_links() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    for target in re.findall(r"\]\(([^)#]+\.md)\)", readme):
        assert (ROOT / target).is_file(), f"README links to missing {target}"


# --- the site ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings") is None:
        pytest.skip("mkdocs / mkdocstrings are not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"}, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return out


def test_site_builds_strict(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert not (site / "_hooks").exists(), "build hooks must not be published"


def test_site_has_generated_configuration_reference(site: Path) -> None:
    page = (site / "configuration" / "index.html").read_text()
    assert "config-reference" not in page
    for key in (
        "sync.interval",
        "manager.max_message_size",
        "grace_period",
        "storage.options",
        "auth.tokens",
    ):
        assert f"<code>{key}</code>" in page, key
    assert "NAVIGATOR_EDGE__MANAGER__TOKEN" in page


def test_site_documents_every_hook(site: Path) -> None:
    page = (site / "hooks" / "index.html").read_text()
    hooks = [n for n, obj in vars(hookspecs).items() if n.startswith("navigator_") and callable(obj)]
    for name in hooks:
        assert f'id="navigator.hookspecs.{name}"' in page, name
    for record in ("Collector", "Serializer", "Transport", "StorageBackend", "StoragePlugin", "ClusterRecord",
                   "ResourceQuery", "ClusterClaims", "Sink", "SinkPlugin"):  # fmt: skip
        assert f'id="navigator.interfaces.{record}"' in page, record
    assert 'id="navigator.resource.Resource"' in page
    # reST roles were turned into links, not left as text
    assert ":class:" not in page
