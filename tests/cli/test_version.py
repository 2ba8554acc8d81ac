"""``navigator version``: navigator, protocol, Python and every plugin distribution, fast."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import orjson

from navigator.cli.main import COMMANDS
from navigator.protocol import PROTOCOL_VERSION

NAVIGATOR = [sys.executable, "-m", "navigator.cli.main"]
HEAVY = ("grpc", "kubernetes", "pydantic", "google.protobuf", "rich")

#: Runs ``navigator ARGS`` in a fresh interpreter, then prints what it had imported.
PROBE = """
import contextlib, io, json, sys
from navigator.cli.main import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
print(json.dumps(sorted(sys.modules)))
"""


def navigator(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NAVIGATOR, *args], capture_output=True, text=True, timeout=60, env=env)


def fake_plugin_distribution(site: Path) -> dict[str, str]:
    """A third party's plugin distribution, installed the way pip leaves one (metadata and entry points);
    returns an environment that puts it on the path."""
    info = site / "navigator_plugin_fake-0.4.2.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: navigator-plugin-fake\nVersion: 0.4.2\n")
    (info / "entry_points.txt").write_text(
        "[navigator.sinks]\nfake = navigator_plugin_fake\n\n[navigator.collectors]\nwidgets = navigator_plugin_fake\n"
    )
    path = [str(site), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def installed_version(env: dict[str, str]) -> str:
    """navigator's version as a process with ``env`` sees it (a source checkout may hold other metadata)."""
    code = "import navigator; print(navigator.__version__)"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout.strip()


def test_prints_navigator_protocol_python_and_plugin_versions(tmp_path: Path) -> None:
    env = fake_plugin_distribution(tmp_path / "site")
    __version__ = installed_version(env)
    result = navigator("version", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["navigator", __version__]
    assert lines[1].split()[:2] == ["protocol", str(PROTOCOL_VERSION)]
    assert lines[2].split()[:2] == ["python", platform.python_version()]
    plugins = {line.split()[0]: line for line in lines[lines.index("plugins:") + 1 :]}
    assert plugins["navigator"].split()[1] == __version__ and "collectors: endpointslices, pods, services" in plugins[
        "navigator"
    ]
    assert plugins["navigator-plugin-fake"].split()[1] == "0.4.2"
    assert "collectors: widgets" in plugins["navigator-plugin-fake"] and "sinks: fake" in plugins["navigator-plugin-fake"]
    assert all(line == line.rstrip() for line in lines)


def test_json(tmp_path: Path) -> None:
    env = fake_plugin_distribution(tmp_path / "site")
    __version__ = installed_version(env)
    result = navigator("version", "-o", "json", env=env)
    assert result.returncode == 0, result.stderr
    data = orjson.loads(result.stdout)
    assert data["navigator"] == __version__
    assert data["protocol"]["version"] == PROTOCOL_VERSION and PROTOCOL_VERSION in data["protocol"]["supported"]
    assert data["python"]["version"] == platform.python_version()
    by_name = {d["distribution"]: d for d in data["plugins"]}
    assert by_name["navigator"]["version"] == __version__
    assert by_name["navigator"]["provides"]["transports"] == ["grpc", "inprocess"]
    assert by_name["navigator-plugin-fake"] == {
        "distribution": "navigator-plugin-fake",
        "version": "0.4.2",
        "provides": {"collectors": ["widgets"], "sinks": ["fake"]},
    }


def test_imports_no_heavy_module_and_no_other_command() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE, "version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    names = set(orjson.loads(result.stdout.splitlines()[-1]))
    heavy = {n for n in names if n in HEAVY or n.split(".")[0] in HEAVY}
    assert not heavy, sorted(heavy)
    assert {m for m in COMMANDS.values() if m in names} == {"navigator.cli.version"}
