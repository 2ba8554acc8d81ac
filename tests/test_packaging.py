"""The wheel carries the default plugins, and a fresh environment discovers them."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (path,) = out.glob("navigator-*.whl")
    return path


def test_wheel_contains_core_plugins_and_protocol(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in [
        "navigator/hookspecs.py",
        "navigator/v1/sync_pb2.py",
        "navigator/v1/sync.proto",
        "navigator/v1/sync_pb2.pyi",
        "navigator/py.typed",
        "navigator_plugins/serializers/protobuf.py",
        "navigator_plugins/transports/grpc/__init__.py",
    ]:
        assert expected in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    for group in (
        "navigator.collectors",
        "navigator.serializers",
        "navigator.transports",
        "navigator.storage",
    ):
        assert f"[{group}]" in text
    assert "navigator = navigator.cli.main:main" in text


def test_fresh_environment_discovers_default_plugins(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    fresh_site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
    )  # fmt: skip
    # Dependencies come from the test environment, appended after the fresh site-packages.
    (fresh_site / "zz_dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    code = (
        "import navigator_plugins, navigator.plugin_manager as m, orjson, sys;"
        "print(navigator_plugins.__file__);"
        "print(orjson.dumps([p.as_dict() for p in m.discover()]).decode())"
    )
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    location, listing = result.stdout.splitlines()
    assert location.startswith(str(fresh_site))
    found = {(p["group"], p["name"]) for p in orjson.loads(listing)}
    assert {
        ("navigator.collectors", "pods"),
        ("navigator.collectors", "services"),
        ("navigator.collectors", "endpointslices"),
        ("navigator.serializers", "protobuf"),
        ("navigator.transports", "grpc"),
        ("navigator.storage", "sqlite"),
    } <= found
