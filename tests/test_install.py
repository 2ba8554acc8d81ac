"""Installing for real: `make dist`, then the documented command in a fresh environment.

PyPI's `navigator` is an unrelated project (0.x). What the documentation tells people to run
must never install it: Navigator and its plugins are installed from the wheels `make dist`
builds (or a private index), with ``--no-index``, and the versions and requirements are such
that a 0.x `navigator` cannot satisfy them even where an index is consulted.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tomllib
import venv
import zipfile
from email.parser import HeaderParser
from pathlib import Path

import orjson
import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
#: The documented install command, as the docs write it.
INSTALL = "pip install --no-index --find-links dist navigator navigator-plugin-postgres"
#: PyPI's unrelated `navigator`, the release the issue found.
UNRELATED = Version("0.2.2")


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    assert result.returncode == 0, f"{cmd}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def local_setuptools_will_do() -> bool:
    """Whether the running environment's setuptools meets every build requirement of the projects."""
    try:
        installed = Version(importlib.metadata.version("setuptools"))
    except importlib.metadata.PackageNotFoundError:
        return False
    for project in [ROOT, *ROOT.glob("contrib/*")]:
        if not (project / "pyproject.toml").is_file():
            continue
        requires = tomllib.loads((project / "pyproject.toml").read_text())["build-system"]["requires"]
        for req in map(Requirement, requires):
            if req.name == "setuptools" and not req.specifier.contains(installed):
                return False
    return True


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make dist` into a temporary directory, with the running environment's Python and setuptools."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = tmp_path_factory.mktemp("dist")
    # Without isolation when this environment's setuptools can build the projects (quick, no index).
    flags = "--no-isolation --skip-dependency-check" if local_setuptools_will_do() else ""
    run(
        ["make", "-s", "-o", ".venv/.installed", "dist", f"DIST={out}", f"BIN={Path(sys.executable).parent}",
         f"BUILD_FLAGS={flags}"],
        cwd=ROOT, timeout=240,
    )  # fmt: skip
    return out


def metadata(wheel: Path) -> dict[str, list[str]]:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        message = HeaderParser().parsestr(z.read(name).decode())
    return {key: message.get_all(key) or [] for key in ("Name", "Version", "Requires-Dist")}


def contrib_projects() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("contrib/*/pyproject.toml"))


def test_make_dist_builds_every_distribution(dist: Path) -> None:
    names = {p.name for p in dist.iterdir()}
    version = metadata(next(dist.glob("navigator-*.whl")))["Version"][0]
    assert Version(version) >= Version("1.0")
    for project in ["navigator", *contrib_projects()]:
        stem = project.replace("-", "_")
        assert f"{stem}-{version}-py3-none-any.whl" in names, names
        assert f"{stem}-{version}.tar.gz" in names, names


def test_wheel_built_from_the_sdist_has_every_file(dist: Path, tmp_path: Path) -> None:
    """`make dist` builds the wheel from the sdist: nothing (protos, web assets) may get lost on the way."""
    isolation = ["--no-build-isolation"] if local_setuptools_will_do() else []
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", *isolation, "-w", str(tmp_path), str(ROOT)],
        timeout=240,
    )  # fmt: skip
    (direct,) = tmp_path.glob("navigator-*.whl")
    (via_sdist,) = dist.glob("navigator-*.whl")
    assert set(zipfile.ZipFile(via_sdist).namelist()) == set(zipfile.ZipFile(direct).namelist())


def test_the_unrelated_navigator_satisfies_no_requirement(dist: Path) -> None:
    """Neither our version, nor the plugin's requirement, nor the tutorial's admits PyPI's 0.x `navigator`."""
    assert Version(metadata(next(dist.glob("navigator-*.whl")))["Version"][0]) > UNRELATED
    for wheel in dist.glob("navigator_plugin_*.whl"):
        (req,) = [r for r in map(Requirement, metadata(wheel)["Requires-Dist"]) if r.name == "navigator"]
        assert req.specifier and not req.specifier.contains(UNRELATED), (wheel.name, str(req))
    page = (ROOT / "docs" / "writing-a-plugin.md").read_text()
    found = re.findall(r'"(navigator[<>=!~][^"]*)"', page)
    assert found, "the tutorial's pyproject.toml must require navigator with a version"
    for text in found:
        assert not Requirement(text).specifier.contains(UNRELATED), text


def test_pip_refuses_the_unrelated_navigator_for_the_plugin(dist: Path, tmp_path: Path) -> None:
    """Offered only a 0.x `navigator`, pip refuses the plugin's requirement; offered ours too, it takes ours."""
    impostor = tmp_path / "impostor"
    (impostor / "navigator").mkdir(parents=True)
    (impostor / "navigator" / "__init__.py").write_text("")
    (impostor / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
        f'[project]\nname = "navigator"\nversion = "{UNRELATED}"\n'
    )
    index = tmp_path / "index"
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(index), str(impostor)],
        timeout=120,
    )  # fmt: skip
    (plugin,) = dist.glob("navigator_plugin_postgres-*.whl")
    (requirement,) = [r for r in metadata(plugin)["Requires-Dist"] if Requirement(r).name == "navigator"]
    dry_run = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--no-index",
               "--find-links", str(index)]  # fmt: skip
    refused = subprocess.run([*dry_run, requirement], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "No matching distribution" in refused.stderr, refused.stderr
    for wheel in dist.glob("navigator-*.whl"):
        shutil.copy(wheel, index)
    report = tmp_path / "report.json"
    run([*dry_run, "--report", str(report), requirement], timeout=120)
    (chosen,) = orjson.loads(report.read_bytes())["install"]
    assert Version(chosen["metadata"]["version"]) >= Version("1.0"), chosen["metadata"]


# --- the documented install in a fresh environment ---------------------------------------------


#: How the docs fill dist/ with the dependencies' wheels.
DOWNLOAD = "pip download --dest dist dist/*.whl"


@pytest.fixture(scope="module")
def fresh(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment (no system site-packages) with navigator installed the documented way.

    The dependencies' wheels come from whatever index pip is configured with (pip's cache makes
    that quick), the way the docs fetch them; the install itself runs with ``--no-index``. The
    pip of the running environment does the work (``pip --python``: the same as the new
    environment's own pip, without the seconds ensurepip takes), and ``--no-compile`` skips
    writing bytecode, which is most of an install's time and changes nothing installed.
    """
    root = tmp_path_factory.mktemp("fresh")
    env_dir = root / "venv"
    venv.create(env_dir, with_pip=False, system_site_packages=False)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    shutil.copytree(dist, root / "dist")
    download = DOWNLOAD.split()
    assert download[:2] == ["pip", "download"] and download[-1] == "dist/*.whl"
    wheels = sorted(str(p.relative_to(root)) for p in (root / "dist").glob("*.whl"))
    run([*pip, *download[1:-1], "--quiet", *wheels], cwd=root, env=env, timeout=600)
    install = INSTALL.split()
    assert install[:2] == ["pip", "install"]
    run([*pip, *install[1:], "--no-compile", "--quiet"], cwd=root, env=env, timeout=240)
    return env_dir


def test_the_documented_command_is_in_the_docs() -> None:
    for page in ["README.md", "docs/getting-started.md", "docs/postgres.md"]:
        text = (ROOT / page).read_text()
        assert INSTALL in text and DOWNLOAD in text, page


@pytest.mark.slow
def test_fresh_environment_runs_navigator_with_the_postgres_plugin(fresh: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    navigator = fresh / "bin" / "navigator"
    assert navigator.is_file()
    version = run([str(navigator), "--version"], env=env, cwd=fresh, timeout=60).stdout.split()
    assert version[0] == "navigator" and Version(version[1]) >= Version("1.0"), version
    listing = orjson.loads(run([str(navigator), "plugins", "list", "-o", "json"], env=env, cwd=fresh, timeout=60).stdout)
    rows = {(p["group"], p["name"]): p for p in listing}
    postgres = rows[("navigator.storage", "postgres")]
    assert postgres["distribution"] == "navigator-plugin-postgres"
    assert postgres["version"] == version[1]
    assert rows[("navigator.storage", "sqlite")]["distribution"] == "navigator"
    # Everything came from the fresh environment, none of it from the one running the tests.
    code = "import navigator, navigator_plugins, navigator_plugin_postgres as p, sys; print(p.__file__, sys.prefix != sys.base_prefix)"
    where, isolated = run([str(fresh / "bin" / "python"), "-c", code], env=env, cwd=fresh, timeout=60).stdout.split()
    assert where.startswith(str(fresh)) and isolated == "True"


# --- nothing documented installs from PyPI by name ---------------------------------------------

OURS = re.compile(r"(?<![\w./-])navigator(-plugin-[\w-]+)?(?![\w./-])")


def command_lines(path: Path) -> list[str]:
    """The lines a reader copies: inside fenced blocks of a page (prose may name the wrong command), all of a Dockerfile."""
    lines = path.read_text().splitlines()
    if path.suffix != ".md":
        return lines
    inside, found = False, []
    for line in lines:
        if line.lstrip().startswith("```"):
            inside = not inside
        elif inside:
            found.append(line)
    return found


def install_lines() -> list[tuple[str, str]]:
    files = [ROOT / "README.md", ROOT / "Dockerfile", *sorted((ROOT / "docs").glob("*.md")),
             *sorted(ROOT.glob("contrib/*/README.md"))]  # fmt: skip
    return [
        (str(path.relative_to(ROOT)), line.strip())
        for path in files
        for line in command_lines(path)
        if re.search(r"\bpip3? install\b", line)
    ]


def test_no_documented_pip_install_of_navigator_consults_an_index() -> None:
    """Every `pip install` naming navigator or a navigator-plugin-* by name carries --no-index."""
    lines = install_lines()
    assert any(INSTALL in line for _, line in lines)
    offending = []
    for where, line in install_lines():
        for match in re.finditer(r"\bpip3? install\b([^#)`]*)", line):
            if OURS.search(match[1]) and "--no-index" not in match[1]:
                offending.append(f"{where}: {line}")
    assert not offending, "\n".join(offending)
