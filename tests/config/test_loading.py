"""Config files: defaults, durations, env overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from navigator.config import load_edge_config, load_manager_config
from navigator.config.loading import name_overrides
from navigator.errors import ConfigError

EDGE = """
cluster:
  id: production-east
  metadata: {region: us-east-1, environment: production}
kubernetes:
  kubeconfig: ~/.kube/config
  context: null
manager:
  address: 127.0.0.1:50051
  token: change-me
sync:
  interval: 30s
plugins:
  collectors: [services, endpointslices, pods]
"""

MANAGER = """
listen: 127.0.0.1:50051
storage:
  plugin: sqlite
  options: {path: navigator.db}
grace_period: 30s
auth:
  tokens: {production-east: change-me}
"""


def write(tmp_path: Path, text: str, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_design_examples_load(tmp_path: Path) -> None:
    edge = load_edge_config(write(tmp_path, EDGE), environ={})
    assert edge.cluster.id == "production-east"
    assert edge.cluster.metadata["region"] == "us-east-1"
    assert edge.sync.interval == 30.0
    assert edge.manager.token == "change-me"
    assert edge.kubernetes.kubeconfig == Path("~/.kube/config").expanduser()
    assert edge.edge_id  # unique default
    manager = load_manager_config(write(tmp_path, MANAGER, "m.yaml"), environ={})
    assert manager.grace_period == 30.0
    assert manager.auth is not None and manager.auth.tokens == {"production-east": "change-me"}


def test_defaults_follow_the_spec(tmp_path: Path) -> None:
    edge = load_edge_config(write(tmp_path, "cluster: {id: c1}\n"), environ={})
    assert edge.sync.interval == 30.0
    assert edge.plugins.collectors == ["services", "endpointslices", "pods"]
    assert edge.kubernetes.page_size == 500
    manager = load_manager_config(None, environ={})
    assert manager.auth is None
    assert manager.storage.plugin == "sqlite"


def test_edge_ids_are_unique_per_process_by_default(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster: {id: c1}\n")
    assert load_edge_config(path, environ={}).edge_id != load_edge_config(path, environ={}).edge_id


@pytest.mark.parametrize(
    ("value", "seconds"), [("30s", 30), ("5m", 300), ("1h", 3600), ("250ms", 0.25), (45, 45), ("7", 7)]
)
def test_durations(tmp_path: Path, value: object, seconds: float) -> None:
    adaptive = "adaptive: {min_interval: 0.1, max_interval: 2h}"
    text = f"cluster: {{id: c1}}\nsync: {{interval: {value!r}, {adaptive}}}\n"
    assert load_edge_config(write(tmp_path, text), environ={}).sync.interval == seconds


def test_banana_interval_names_sync_interval(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_edge_config(write(tmp_path, "cluster: {id: c1}\nsync: {interval: banana}\n"), environ={})
    assert "sync.interval" in str(info.value)
    assert "banana" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("cluster: {id: c1}\nsync: {intervall: 30s}\n", "sync.intervall: unknown key"),
        ("sync: {interval: 30s}\n", "cluster: required key is missing"),
        ("cluster: {id: Not_Valid!}\n", "cluster.id"),
        ("cluster: {id: c1}\nmanager: {address: nohost}\n", "manager.address"),
        ("cluster: {id: c1}\nmanager: {max_message_size: lots}\n", "manager.max_message_size"),
        ("cluster: {id: c1}\nkubernetes: {page_size: 0}\n", "kubernetes.page_size"),
        ("cluster: {id: c1}\nmanager: {reconnect: {initial: 10s, max: 1s}}\n", "manager.reconnect"),
    ],
)
def test_bad_edge_keys_are_named(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_edge_config(write(tmp_path, text), environ={})
    assert key in str(info.value)


def test_bad_manager_keys_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_manager_config(write(tmp_path, "grace_period: soon\nlisten: 1.2.3.4\n"), environ={})
    message = str(info.value)
    assert "grace_period" in message and "listen" in message


def test_yaml_syntax_error_gives_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_edge_config(write(tmp_path, "cluster:\n  id: [unclosed\n"), environ={})
    assert "c.yaml:" in str(info.value) and "YAML" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_edge_config(tmp_path / "absent.yaml", environ={})


def test_secrets_from_environment(tmp_path: Path) -> None:
    edge = load_edge_config(
        write(tmp_path, "cluster: {id: c1}\n"), environ={"NAVIGATOR_EDGE__MANAGER__TOKEN": "from-env"}
    )
    assert edge.manager.token == "from-env"
    manager = load_manager_config(
        write(tmp_path, MANAGER, "m.yaml"),
        environ={
            "NAVIGATOR_AUTH_TOKENS": "staging-west=s3cret",
            "NAVIGATOR_MANAGER__STORAGE__OPTIONS__DSN": "postgresql://x",
        },
    )
    assert manager.auth is not None
    assert manager.auth.tokens == {"production-east": "change-me", "staging-west": "s3cret"}
    assert manager.storage.options["dsn"] == "postgresql://x"


def test_token_file(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("file-token\n")
    edge = load_edge_config(
        write(tmp_path, f"cluster: {{id: c1}}\nmanager: {{token_file: {tmp_path / 'token'}}}\n"), environ={}
    )
    assert edge.manager.resolved_token() == "file-token"
    endpoint = edge.manager.endpoint()
    assert (endpoint.address, endpoint.token) == ("127.0.0.1:50051", "file-token")
    (tmp_path / "token").unlink()
    with pytest.raises(OSError, match=r"cannot read manager\.token_file"):
        edge.manager.endpoint()


def test_transport_section_defaults_to_grpc_and_keeps_options_for_the_plugin(tmp_path: Path) -> None:
    edge = load_edge_config(write(tmp_path, "cluster: {id: c1}\n"), environ={})
    assert (edge.transport.plugin, edge.transport.options) == ("grpc", {})
    text = "transport: {plugin: inprocess, options: {anything: 1}}\n"
    manager = load_manager_config(write(tmp_path, text, "m.yaml"), environ={})
    assert manager.transport.options == {"anything": 1}  # the plugin, not the core, judges options
    assert manager.enabled_plugins()["transports"] == ["inprocess"]


@pytest.mark.parametrize("load", [load_edge_config, load_manager_config])
def test_the_older_plugins_transport_key_still_works(tmp_path: Path, load: Any) -> None:
    base = "cluster: {id: c1}\n" if load is load_edge_config else ""
    config = load(write(tmp_path, base + "plugins: {transport: inprocess}\n"), environ={})
    assert config.transport.plugin == "inprocess"
    assert config.enabled_plugins()["transports"] == ["inprocess"]
    same = "plugins: {transport: inprocess}\ntransport: {plugin: inprocess, options: {}}\n"
    assert load(write(tmp_path, base + same), environ={}).transport.plugin == "inprocess"
    both = "plugins: {transport: inprocess}\ntransport: {plugin: grpc}\n"
    differ = r"plugins\.transport \('inprocess'\) and transport\.plugin \('grpc'\) differ"
    with pytest.raises(ConfigError, match=differ):
        load(write(tmp_path, base + both), environ={})


@pytest.mark.parametrize(
    ("load", "text", "hint"),
    [
        (load_edge_config, "manager: {keepalive: {time: 30s}}\n", "manager: keepalive moved to transport.options"),
        (load_edge_config, "manager: {compression: gzip}\n", "moved to transport.options.compression"),
        (load_manager_config, "keepalive: {time: 5s}\n", "keepalive moved to transport.options.keepalive"),
    ],
)
def test_moved_grpc_keys_point_at_transport_options(tmp_path: Path, load: Any, text: str, hint: str) -> None:
    base = "cluster: {id: c1}\n" if load is load_edge_config else ""
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, base + text), environ={})
    assert hint in str(info.value)


@pytest.mark.parametrize(("interval", "low", "high"), [("2s", 2.0, 300.0), ("30s", 5.0, 300.0), ("10m", 5.0, 600.0)])
def test_an_explicit_interval_is_honoured_by_default_adaptive_bounds(
    tmp_path: Path, interval: str, low: float, high: float
) -> None:
    # interval: 2s was refused: the default adaptive minimum (5 s) did not follow it.
    sync = load_edge_config(write(tmp_path, f"cluster: {{id: c1}}\nsync: {{interval: {interval}}}\n"), environ={}).sync
    assert (sync.adaptive.min_interval, sync.adaptive.max_interval) == (low, high)


def test_adaptive_bounds_that_were_set_must_hold_the_interval(tmp_path: Path) -> None:
    text = "cluster: {id: c1}\nsync: {interval: 2s, adaptive: {min_interval: 5s}}\n"
    with pytest.raises(ConfigError, match=r"interval \(2.0s\) must lie between adaptive.min_interval \(5.0s\)"):
        load_edge_config(write(tmp_path, text), environ={})


def test_storage_options_default_per_plugin(tmp_path: Path) -> None:
    # storage: {plugin: postgres} failed with "storage.options.path: unknown key": SQLite's default leaked.
    postgres = load_manager_config(write(tmp_path, "storage: {plugin: postgres}\n", "m.yaml"), environ={})
    assert postgres.storage.options == {}
    assert load_manager_config(None, environ={}).storage.options == {"path": "navigator.db"}
    given = load_manager_config(write(tmp_path, "storage: {options: {path: x.db}}\n", "m.yaml"), environ={})
    assert (given.storage.plugin, given.storage.options) == ("sqlite", {"path": "x.db"})


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("NAVIGATOR_EDGE__SYNC__INTERVAL", "banana", "NAVIGATOR_EDGE__SYNC__INTERVAL: invalid duration 'banana'"),
        ("NAVIGATOR_EDGE__MANAGER__TOKN", "x", "NAVIGATOR_EDGE__MANAGER__TOKN: unknown key"),
        ("NAVIGATOR_EDGE__KUBERNETES__PAGE_SIZE", "0", "NAVIGATOR_EDGE__KUBERNETES__PAGE_SIZE: "),
        ("NAVIGATOR_EDGE__MANAGER", "x", "NAVIGATOR_EDGE__MANAGER: "),
    ],
)
def test_a_bad_environment_override_names_the_variable_not_the_file(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    # The file is fine: naming it would send the reader looking where the value never was.
    path = write(tmp_path, "cluster: {id: c1}\n")
    with pytest.raises(ConfigError) as info:
        load_edge_config(path, environ={variable: value})
    message = str(info.value)
    assert message.startswith(expected), message
    assert str(path) not in message and "c.yaml" not in message


def test_manager_environment_overrides_are_named_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_manager_config(
            write(tmp_path, MANAGER, "m.yaml"), environ={"NAVIGATOR_MANAGER__GRACE_PERIOD": "soon"}
        )
    assert str(info.value).startswith("NAVIGATOR_MANAGER__GRACE_PERIOD: invalid duration 'soon'")
    assert "overrides grace_period" in str(info.value)


def test_file_and_environment_problems_are_each_named_by_their_source(tmp_path: Path) -> None:
    path = write(tmp_path, "cluster: {id: c1}\nsync: {intervall: 30s}\n")
    with pytest.raises(ConfigError) as info:
        load_edge_config(path, environ={"NAVIGATOR_EDGE__MANAGER__CONNECT_TIMEOUT": "never"})
    lines = str(info.value).splitlines()
    assert lines[0] == f"{path}: invalid configuration"
    assert "  sync.intervall: unknown key" in lines
    assert any(line.startswith("NAVIGATOR_EDGE__MANAGER__CONNECT_TIMEOUT: invalid duration 'never'") for line in lines)


def test_a_section_problem_mentions_the_variables_inside_it(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("t\n")
    path = write(tmp_path, f"cluster: {{id: c1}}\nmanager: {{token_file: {tmp_path / 'token'}}}\n")
    with pytest.raises(ConfigError) as info:
        load_edge_config(path, environ={"NAVIGATOR_EDGE__MANAGER__TOKEN": "x"})
    assert "give token or token_file" in str(info.value)
    assert "NAVIGATOR_EDGE__MANAGER__TOKEN" in str(info.value)


def test_a_plugin_error_about_a_key_a_variable_set_names_the_variable() -> None:
    # Plugins validate their options after loading; the error names the key, and the variable set it.
    environ = {"NAVIGATOR_EDGE__TRANSPORT__OPTIONS__COMPRESSION": "zip"}
    message = "transport (grpc): transport.options.compression: Input should be 'none' or 'gzip'"
    assert name_overrides(message, "NAVIGATOR_EDGE__", environ) == (
        "transport (grpc): NAVIGATOR_EDGE__TRANSPORT__OPTIONS__COMPRESSION (transport.options.compression): "
        "Input should be 'none' or 'gzip'"
    )
    # A key from the file, or another command's variable, stays as it is.
    assert name_overrides("transport.options.keepalive.time: bad", "NAVIGATOR_EDGE__", environ).startswith(
        "transport.options.keepalive.time: "
    )
    assert name_overrides(message, "NAVIGATOR_MANAGER__", environ) == message
