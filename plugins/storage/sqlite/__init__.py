"""The default storage backend: SQLite (``storage: {plugin: sqlite, options: {path: navigator.db}}``).

Options: ``path`` (default ``navigator.db``), ``busy_timeout`` (how long to wait
for another process's lock, default ``30s``), ``synchronous`` (``NORMAL``, the
default, is crash-safe in WAL mode; ``FULL`` also survives power loss).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from navigator_plugins.storage.sqlite.backend import SQLiteBackend

from navigator.plugin import StorageBackend, StorageError, StoragePlugin, hookimpl, parse_duration

OPTIONS = ("path", "busy_timeout", "synchronous")


def create(options: Mapping[str, Any]) -> StorageBackend:
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise StorageError(f"unknown sqlite option {', '.join(unknown)} (known: {', '.join(OPTIONS)})")
    path = Path(str(options.get("path") or "navigator.db")).expanduser()
    if not path.parent.is_dir():
        raise StorageError(f"sqlite option path: directory {path.parent} does not exist")
    try:
        busy_timeout = parse_duration(options.get("busy_timeout", 30.0))
    except ValueError as exc:
        raise StorageError(f"sqlite option busy_timeout: {exc}") from None
    synchronous = str(options.get("synchronous", "NORMAL")).upper()
    if synchronous not in ("NORMAL", "FULL"):
        raise StorageError(f"sqlite option synchronous: expected NORMAL or FULL, got {synchronous!r}")
    return SQLiteBackend(path, busy_timeout=busy_timeout, synchronous=synchronous)


@hookimpl
def navigator_storage_backends() -> Iterable[StoragePlugin]:
    return [StoragePlugin(name="sqlite", create=create, description="one SQLite file (WAL), the default")]
