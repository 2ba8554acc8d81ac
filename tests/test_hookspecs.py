"""Every hook is documented, its docstring example runs, and every hook has a test (as datasette does)."""

from __future__ import annotations

import ast
import asyncio
import inspect
import sys
import types
from collections.abc import Callable
from pathlib import Path

import pytest

from navigator import hookspecs, plugin_manager
from navigator.config.edge import EdgeConfig
from navigator.edge.once import collect_once
from navigator.interfaces import StorageBackend
from navigator.interfaces.storage import HistoryQuery
from navigator.kubesim import KubeSim
from navigator.testing.storage_conformance import Feed, StorageConformance, make, state, summary

HOOKS = [name for name, obj in vars(hookspecs).items() if name.startswith("navigator_") and callable(obj)]
TESTS = Path(__file__).resolve().parent


def example(name: str) -> str:
    doc = inspect.getdoc(getattr(hookspecs, name)) or ""
    return inspect.cleandoc(doc.split("::", 1)[1])


def example_plugin(name: str) -> types.ModuleType:
    """The hook's docstring example, executed as the plugin module a third party would install."""
    module = types.ModuleType(f"example_{name}")
    sys.modules[module.__name__] = module  # as if imported: pydantic resolves annotations through it
    exec(compile(example(name), f"<example of {name}>", "exec"), module.__dict__)
    return module


def loaded(name: str) -> plugin_manager.pluggy.PluginManager:
    pm = plugin_manager.create_plugin_manager()
    pm.register(example_plugin(name))
    return pm


def test_hooks_exist() -> None:
    assert {
        "navigator_collectors",
        "navigator_serializers",
        "navigator_transports",
        "navigator_storage_backends",
        "navigator_sinks",
    } <= set(HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented_with_an_example(name: str) -> None:
    hook = getattr(hookspecs, name)
    doc = inspect.getdoc(hook) or ""
    assert len(doc.splitlines()[0]) > 10, f"{name} has no summary line"
    assert "Example" in doc and "@hookimpl" in doc, f"{name} lacks an example implementation"
    assert inspect.signature(hook).return_annotation not in (inspect.Signature.empty, "None"), (
        f"{name} has no return type"
    )


@pytest.mark.parametrize("name", HOOKS)
def test_hook_example_imports_only_the_public_api(name: str) -> None:
    imported = set()
    for node in ast.walk(ast.parse(example(name))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
    navigator_modules = {m for m in imported if m.split(".")[0].startswith("navigator")}
    assert navigator_modules <= {"navigator.plugin"}, f"{name}'s example imports {navigator_modules}"


@pytest.mark.parametrize("name", HOOKS)
def test_every_hook_has_a_test(name: str) -> None:
    """A test named ``test_hook_<hook>...`` somewhere under tests/ exercises the hook."""
    wanted = "test_hook_" + name.removeprefix("navigator_")
    for path in TESTS.rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(wanted):
                return
    pytest.fail(f"no test named {wanted}* under tests/ for hook {name}")


# -- each hook's example, run through the plugin manager as the core uses it --------------------


def test_hook_collectors_example_collects_from_a_cluster(kubesim: KubeSim) -> None:
    pm = loaded("navigator_collectors")
    widgets = plugin_manager.collectors(pm, ["widgets"])["widgets"]
    kubesim.register_kind("example.com", "v1", "Widget", "widgets")
    for size in (1, 2):
        kubesim.create(
            {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "metadata": {"name": f"w{size}", "namespace": "default", "labels": {"size": str(size)}},
                "spec": {"size": size},
            }
        )
    config = EdgeConfig.model_validate(
        {
            "cluster": {"id": "sim"},
            "kubernetes": {"kubeconfig": str(kubesim.kubeconfig_path), "context": kubesim.context},
            "plugins": {"collectors": [widgets.name], "serializers": ["json"]},
        }
    )
    pm_with_serializer = plugin_manager.load_plugins({"serializers": ["json"]}, pm)
    report = asyncio.run(collect_once(config, pm=pm_with_serializer))
    assert report.exit_code == 0
    got = sorted((r.name, r.labels, r.data) for r in report.results["widgets"].resources)
    assert got == [("w1", {"size": "1"}, {"size": 1}), ("w2", {"size": "2"}, {"size": 2})]


def test_hook_serializers_example_round_trips() -> None:
    serializer = plugin_manager.serializers(loaded("navigator_serializers"), ["json"])["json"]
    data = {"phase": "Running", "ports": [{"port": 80}], "ready": True}
    payload = serializer.encode(data)
    assert isinstance(payload, bytes)
    assert serializer.decode(payload) == data


def test_hook_sinks_example_receives_changes(capsys: pytest.CaptureFixture[str]) -> None:
    from navigator.resource import Change, ChangeType

    offered = plugin_manager.sinks(loaded("navigator_sinks"), ["printer"])["printer"]
    sink = offered.create({})
    change = Change("east", "pods", "default", "web-1", "uid-1", ChangeType.ADDED, None, "7")
    asyncio.run(sink.send([change]))
    asyncio.run(sink.close())
    assert "ADDED east pods web-1" in capsys.readouterr().out


def test_hook_storage_backends_example_is_offered_and_validates_options(tmp_path: Path) -> None:
    offered = plugin_manager.storage_backend(loaded("navigator_storage_backends"), "pickle")
    with pytest.raises(Exception, match="colour"):
        offered.create({"colour": "blue"})
    backend = offered.create({"path": str(tmp_path / "state.pickle")})
    assert isinstance(backend, StorageBackend)  # every method of the protocol is there
    backend.migrate()
    changes = Feed(backend)(state(make("web-1")))  # fed by the core's reconciler, as the manager does
    assert summary(changes) == [("ADDED", "pods", "web-1", "uid-pods-default-web-1")]
    assert [c.name for c in backend.history(HistoryQuery())] == ["web-1"]
    backend.close()


def test_hook_transports_example_validates_options_and_fails_cleanly() -> None:
    from navigator.errors import ConfigError
    from navigator.interfaces import EdgeEndpoint, ManagerEndpoint, StreamClosed

    pm = loaded("navigator_transports")
    with pytest.raises(ConfigError, match=r"transport \(pigeons\): transport.options.patience: invalid duration"):
        plugin_manager.create_transport(pm, "pigeons", {"patience": "whenever"})
    transport = plugin_manager.create_transport(pm, "pigeons", {"patience": "2s"})
    # An edge that cannot connect gets StreamClosed, the one failure its reconnect loop expects.
    with pytest.raises(StreamClosed, match="in 2s"):
        asyncio.run(transport.connect(EdgeEndpoint(address="127.0.0.1:1")))
    server = asyncio.run(transport.serve(ManagerEndpoint(listen="127.0.0.1:0"), services=None))  # type: ignore[arg-type]
    assert server.address == "127.0.0.1:0"
    asyncio.run(server.stop(0))


class TestHookStorageBackendsExampleConformance(StorageConformance):
    """The storage example is a complete backend: it passes the suite every backend passes."""

    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> Callable[[], object]:
        offered = plugin_manager.storage_backend(loaded("navigator_storage_backends"), "pickle")
        return lambda: offered.create({"path": str(tmp_path / "state.pickle")})
