"""The SQLite backend: the shared conformance suite plus what only SQLite has (WAL, file schema, kill -9)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from navigator_plugins.storage.sqlite import create
from navigator_plugins.storage.sqlite.schema import SCHEMA_VERSION

from navigator.interfaces import ResourceQuery, StorageBackend, StorageError
from navigator.manager.claims import InMemoryClaims
from navigator.selectors import parse_selector
from navigator.testing.storage_conformance import (
    BackendFactory,
    StorageConformance,
    check_claim_rules,
    make,
)
from navigator.testing.storage_conformance import record as cluster_record


class TestSQLiteConformance(StorageConformance):
    @pytest.fixture
    def backend_factory(self, tmp_path: Path) -> BackendFactory:
        return lambda: create({"path": str(tmp_path / "navigator.db")})


def test_the_in_memory_registry_follows_the_rules() -> None:
    check_claim_rules(lambda grace: InMemoryClaims("mgr-1", grace))


@pytest.fixture
def backend(tmp_path: Path) -> StorageBackend:
    backend = create({"path": str(tmp_path / "navigator.db")})
    backend.migrate()
    return backend


def test_wal_mode_and_schema_version_are_in_the_file(backend: StorageBackend, tmp_path: Path) -> None:
    backend.close()
    conn = sqlite3.connect(tmp_path / "navigator.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT max(version) FROM navigator_schema").fetchone()[0] == SCHEMA_VERSION
    indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"resources_key", "resources_kind_namespace"} <= indexes


def test_a_newer_schema_is_refused_with_a_clear_error(backend: StorageBackend, tmp_path: Path) -> None:
    backend.close()
    conn = sqlite3.connect(tmp_path / "navigator.db")
    conn.execute("INSERT INTO navigator_schema (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    newer = create({"path": str(tmp_path / "navigator.db")})
    with pytest.raises(StorageError, match="newer than this navigator understands"):
        newer.migrate()
    newer.close()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"path": "/nonexistent-dir/x.db"}, "directory /nonexistent-dir does not exist"),
        ({"pth": "x.db"}, "unknown sqlite option pth"),
        ({"busy_timeout": "soon"}, "busy_timeout"),
        ({"synchronous": "OFF"}, "synchronous"),
    ],
)
def test_bad_options_name_the_option(options: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=message):
        create(options)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=r"garbage\.db"):
        backend = create({"path": str(path)})
        backend.migrate()


def test_label_keys_with_dots_and_slashes(backend: StorageBackend) -> None:
    backend.apply_snapshot(
        cluster_record(), ["pods"], [make("a", labels={"app.kubernetes.io/name": "x", "app": "y"})]
    )
    found = list(backend.query(ResourceQuery(selector=parse_selector("app.kubernetes.io/name=x"))))
    assert [f.resource.name for f in found] == ["a"]
    assert list(backend.query(ResourceQuery(selector=parse_selector("app.kubernetes.io/name=y")))) == []


WRITER = textwrap.dedent(
    """
    import sys
    from navigator_plugins.storage.sqlite import create
    from navigator.interfaces import ClusterRecord
    from navigator.resource import Resource

    backend = create({"path": sys.argv[1]})
    backend.migrate()
    n = int(sys.argv[2])
    generation = 0
    while True:
        generation += 1
        prefix = "a" if generation % 2 else "b"  # alternate names: every apply adds n and deletes n
        pods = [
            Resource("pods", "default", f"{prefix}-{i}", f"{prefix}-{i}", str(generation), {"gen": str(generation)},
                     {"gen": generation, "pad": "x" * 200})
            for i in range(n)
        ]
        backend.apply_snapshot(ClusterRecord("east", last_sequence=generation), ["pods"], pods)
        print(generation, flush=True)
    """
)


def test_kill_9_during_applies_leaves_a_consistent_database(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    n = 3000
    for attempt, delay in enumerate((0.05, 0.23, 0.41)):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(n)], stdout=subprocess.PIPE, text=True
        )
        assert proc.stdout is not None
        # Wait for a couple of commits, then kill at an arbitrary point inside the next apply.
        for _ in range(2):
            assert proc.stdout.readline(), "the writer died before committing"
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()

        backend = create({"path": str(path)})
        backend.migrate()
        stored = backend.get_cluster("east")
        assert stored is not None and stored.last_sequence >= 2
        pods = list(backend.query(ResourceQuery(cluster="east", kind="pods")))
        generations = {p.resource.data["gen"] for p in pods}
        prefixes = {p.resource.name[0] for p in pods}
        assert len(pods) == n, f"attempt {attempt}: torn snapshot with {len(pods)} pods"
        assert generations == {stored.last_sequence}, f"attempt {attempt}: mixed generations {generations}"
        assert prefixes == {"a" if stored.last_sequence % 2 else "b"}
        backend.close()
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
