"""The architecture boundaries in `make lint`: import contracts (import-linter) and dead code (vulture).

The contracts live in pyproject.toml (``[tool.importlinter]``). These tests keep
their lists complete as the code grows, and show that a planted violation
really fails the check: the source tree is copied, one bad import is added to
the copy, and ``lint-imports`` runs against the copy.
"""

from __future__ import annotations

import os
import pkgutil
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONTRACTS = {c["id"]: c for c in PYPROJECT["tool"]["importlinter"]["contracts"]}
#: What plugins may import from Navigator: ``navigator`` itself (for ``hookimpl``) and these.
PLUGIN_API = {"navigator.plugin", "navigator.testing"}
#: Where each import package lives in the source tree.
SOURCES = {
    "navigator": ROOT / "navigator",
    "navigator_plugins": ROOT / "plugins",
    "navigator_plugin_postgres": ROOT / "contrib" / "navigator-plugin-postgres" / "navigator_plugin_postgres",
}


def children(package: str) -> set[str]:
    """The direct submodules and subpackages of ``package``, read from the source tree."""
    return {f"{package}.{m.name}" for m in pkgutil.iter_modules([str(SOURCES[package])])}


def tool(name: str) -> str:
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[dev]'"
    return found


def lint_imports(cwd: Path, *, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)  # ahead of the editable installs: grimp analyses the copy
    return subprocess.run(
        [tool("lint-imports"), "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def flat(result: subprocess.CompletedProcess[str]) -> str:
    """The output with rich's line wrapping undone."""
    return " ".join((result.stdout + result.stderr).split())


# -- the contract lists stay complete ----------------------------------------------------------------


def test_plugins_are_forbidden_every_navigator_module_outside_the_public_api() -> None:
    contract = CONTRACTS["plugins-public-api"]
    forbidden = set(contract["forbidden_modules"])
    modules = children("navigator")
    unlisted = modules - forbidden - PLUGIN_API
    assert not unlisted, (
        f"new navigator modules {sorted(unlisted)}: add them to forbidden_modules of the "
        "'plugins-public-api' contract in pyproject.toml (or, if plugins may import them, to navigator.plugin)"
    )
    assert not forbidden - modules, f"forbidden_modules names modules that no longer exist: {sorted(forbidden - modules)}"
    assert not forbidden & PLUGIN_API
    assert set(contract["source_modules"]) == {"navigator_plugins", "navigator_plugin_postgres"}
    assert contract.get("allow_indirect_imports") is True  # navigator.plugin re-exports from the core


def test_plugin_kinds_contract_names_every_builtin_plugin_package() -> None:
    packages = {m.name for m in pkgutil.iter_modules([str(SOURCES["navigator_plugins"])]) if m.ispkg}
    listed = set(CONTRACTS["builtin-plugin-kinds-independent"]["modules"])
    assert listed == {f"navigator_plugins.{p}" for p in packages}


def test_root_packages_are_the_core_and_both_plugin_distributions() -> None:
    assert set(PYPROJECT["tool"]["importlinter"]["root_packages"]) == set(SOURCES)


# -- lint-imports passes on the tree and fails on a planted violation ----------------------------------


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, flat(result)
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in flat(result)


@pytest.fixture
def tree_copy(tmp_path: Path) -> Path:
    """The three import packages and pyproject.toml, copied side by side as their import names."""
    copy = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package, source in SOURCES.items():
        shutil.copytree(source, copy / package, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def plant(path: Path, line: str) -> None:
    assert path.exists(), path
    path.write_text(path.read_text() + f"\n{line}  # planted by tests/test_architecture.py\n")


def broken(result: subprocess.CompletedProcess[str], contract_id: str) -> bool:
    return f"{CONTRACTS[contract_id]['name']} BROKEN" in flat(result)


def test_core_importing_a_plugin_fails_lint(tree_copy: Path) -> None:
    plant(tree_copy / "navigator" / "manager" / "app.py", "import navigator_plugins")
    result = lint_imports(tree_copy, pythonpath=tree_copy)
    assert result.returncode != 0
    assert broken(result, "core-no-plugins"), flat(result)
    assert "navigator.manager.app -> navigator_plugins" in flat(result)


def test_plugin_importing_the_core_past_the_public_api_fails_lint(tree_copy: Path) -> None:
    plant(tree_copy / "navigator_plugins" / "collectors" / "pods.py", "from navigator.config import edge")
    result = lint_imports(tree_copy, pythonpath=tree_copy)
    assert result.returncode != 0
    assert broken(result, "plugins-public-api"), flat(result)
    assert "navigator_plugins.collectors.pods -> navigator.config.edge" in flat(result)


def test_core_importing_the_simulator_fails_lint(tree_copy: Path) -> None:
    plant(tree_copy / "navigator" / "edge" / "loop.py", "import navigator.kubesim")
    result = lint_imports(tree_copy, pythonpath=tree_copy)
    assert result.returncode != 0
    assert broken(result, "core-no-simulator"), flat(result)
    assert "navigator.edge.loop -> navigator.kubesim" in flat(result)


# -- vulture passes on the tree and reports planted dead code --------------------------------------------


def vulture(cwd: Path, *paths: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("vulture"), *paths], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_no_dead_code() -> None:
    result = vulture(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dead_code_fails_vulture(tree_copy: Path) -> None:
    whitelist = ROOT / "scripts" / "vulture_whitelist.py"
    assert str(whitelist.relative_to(ROOT)) in PYPROJECT["tool"]["vulture"]["paths"]
    shutil.copy2(whitelist, tree_copy / whitelist.name)
    plant(tree_copy / "navigator" / "edge" / "loop.py", "def _never_called() -> None: ...")
    # The copy's pyproject.toml brings the exclusions and min_confidence.
    result = vulture(tree_copy, *SOURCES, whitelist.name)
    assert result.returncode != 0
    assert "navigator/edge/loop.py" in result.stdout and "'_never_called'" in result.stdout, result.stdout
