from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson


def navigator(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "navigator.cli.main", *args], capture_output=True, text=True, timeout=60
    )


def test_schema_edge_and_manager() -> None:
    for which, key in (("edge", "sync"), ("manager", "grace_period")):
        result = navigator("config", "schema", which)
        assert result.returncode == 0, result.stderr
        assert key in orjson.loads(result.stdout)["properties"]


def test_bad_config_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("cluster: {id: c1}\nsync: {interval: banana}\n")
    result = navigator("edge", "--config", str(path))
    assert result.returncode == 2
    assert "sync.interval" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_is_usage_error() -> None:
    result = navigator("frobnicate")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_plugins_list_marks_what_a_config_enables(tmp_path: Path) -> None:
    manager = tmp_path / "manager.yaml"
    manager.write_text("storage: {plugin: postgres, options: {dsn: 'postgresql://x'}}\nsinks: [{plugin: log}]\n")
    result = navigator("plugins", "list", "-o", "json", "--manager-config", str(manager))
    assert result.returncode == 0, result.stderr
    enabled = {(r["group"], r["name"]) for r in orjson.loads(result.stdout) if r["enabled"]}
    assert ("navigator.sinks", "log") in enabled
    assert ("navigator.storage", "sqlite") not in enabled
    assert ("navigator.collectors", "pods") not in enabled
