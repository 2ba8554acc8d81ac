"""Registers ``postgres`` in ``navigator.storage`` (the entry point names this module)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from navigator.plugin import StorageBackend, StoragePlugin, hookimpl
from navigator_plugin_postgres.backend import PostgresBackend
from navigator_plugin_postgres.options import parse_options


def create(options: Mapping[str, Any]) -> StorageBackend:
    """Validate ``storage.options`` and connect; problems surface as ``StorageError``."""
    return PostgresBackend(parse_options(options))


@hookimpl
def navigator_storage_backends() -> Iterable[StoragePlugin]:
    return [
        StoragePlugin(
            name="postgres",
            create=create,
            description="PostgreSQL; several managers can share one database",
        )
    ]
