"""The storage conformance suite, unchanged, against PostgreSQL: one fresh schema per test."""

from __future__ import annotations

from typing import Any

import pytest
from navigator_plugin_postgres.plugin import create

from navigator.testing.storage_conformance import BackendFactory, StorageConformance


class TestPostgresConformance(StorageConformance):
    @pytest.fixture
    def backend_factory(self, pg_options: dict[str, Any]) -> BackendFactory:
        return lambda: create(pg_options)
