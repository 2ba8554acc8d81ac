from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest


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


def test_a_bad_grpc_option_stops_edge_and_manager_naming_the_key(tmp_path: Path) -> None:
    options = "transport: {plugin: grpc, options: {compression: zstd, keepalive: {time: soon}}}\n"
    edge = tmp_path / "edge.yaml"
    edge.write_text("cluster: {id: c1}\nmanager: {address: 127.0.0.1:1}\n" + options)
    manager = tmp_path / "manager.yaml"
    manager.write_text(f"listen: 127.0.0.1:0\nstorage: {{options: {{path: {tmp_path / 'n.db'}}}}}\n" + options)
    for command, path in (("edge", edge), ("manager", manager)):
        result = navigator(command, "--config", str(path))
        assert result.returncode == 2, (command, result.stderr)
        assert "transport.options.compression: Input should be 'none' or 'gzip'" in result.stderr, command
        assert "transport.options.keepalive.time: invalid duration 'soon'" in result.stderr, command
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "n.db").exists()  # rejected before storage was touched


def test_an_option_the_inprocess_transport_does_not_take_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "edge.yaml"
    path.write_text("cluster: {id: c1}\nplugins: {transport: inprocess}\ntransport: {options: {compression: gzip}}\n")
    result = navigator("edge", "--config", str(path))
    assert result.returncode == 2
    assert "transport (inprocess): transport.options.compression: unknown key" in result.stderr


def test_plugins_list_follows_the_older_transport_key(tmp_path: Path) -> None:
    edge = tmp_path / "edge.yaml"
    edge.write_text("cluster: {id: c1}\nplugins: {transport: inprocess}\n")
    result = navigator("plugins", "list", "-o", "json", "--edge-config", str(edge))
    assert result.returncode == 0, result.stderr
    transports = {r["name"] for r in orjson.loads(result.stdout) if r["group"] == "navigator.transports" and r["enabled"]}
    assert transports == {"inprocess"}


def test_the_schema_takes_every_value_the_loader_takes(tmp_path: Path) -> None:
    # The schema typed durations and sizes as numbers, so the docs' own `interval: 30s` failed against it.
    import jsonschema
    import yaml

    from navigator.config import load_edge_config, load_manager_config

    edge_schema = orjson.loads(navigator("config", "schema", "edge").stdout)
    manager_schema = orjson.loads(navigator("config", "schema", "manager").stdout)
    edge = (
        "cluster: {id: c1}\n"
        "sync: {interval: 30s, full_resync_interval: 10m, batch_window: 250ms, adaptive: {min_interval: 2, max_interval: 1h}}\n"
        "manager: {address: '127.0.0.1:1', max_message_size: 64Mi}\n"
        "kubernetes: {request_timeout: 10, watch_idle_timeout: 1.5m}\n"
    )
    manager = "grace_period: 30s\nheartbeat: 5\nlimits: {max_message_size: 4MiB, max_payload_bytes: 512kb}\n"
    for text, schema, load in ((edge, edge_schema, load_edge_config), (manager, manager_schema, load_manager_config)):
        path = tmp_path / "config.yaml"
        path.write_text(text)
        load(path, environ={})  # the loader takes it...
        jsonschema.validate(yaml.safe_load(text), schema)  # ...and so does the schema
    for bad in ("sync: {interval: soon}", "sync: {interval: -5s}"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(yaml.safe_load("cluster: {id: c1}\n" + bad), edge_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"limits": {"max_message_size": "lots"}}, manager_schema)
