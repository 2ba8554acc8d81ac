"""``storage.options`` for ``plugin: postgres``, validated before anything connects.

Secrets stay out of the YAML: ``NAVIGATOR_MANAGER__STORAGE__OPTIONS__DSN`` (the
manager's loader) or ``NAVIGATOR_POSTGRES_DSN`` (read here) supply the DSN.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from navigator.plugin import BackoffPolicy, Duration, StorageError

#: Environment variable consulted when ``dsn`` is not in the options.
DSN_ENV = "NAVIGATOR_POSTGRES_DSN"

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, validate_default=True)

    dsn: str = Field("", description=f"libpq connection string or URI; falls back to ${DSN_ENV}")
    schema_name: str = Field(
        "navigator", alias="schema", description="PostgreSQL schema holding Navigator's tables"
    )
    pool_min_size: int = Field(1, ge=0, description="connections kept open")
    pool_max_size: int = Field(8, ge=1, description="most connections one manager opens for writes")
    query_pool_size: int = Field(
        4, ge=1, description="most connections streaming query results (kept apart so readers never block writes)"
    )
    connect_timeout: Duration = Field(10.0, gt=0, description="give up connecting after this long")
    statement_timeout: Duration = Field(0.0, ge=0, description="abort statements running longer; 0: no limit")
    retry_attempts: int = Field(5, ge=1, description="tries per operation when the connection fails")
    retry_initial_backoff: Duration = Field(
        0.1, ge=0, description="first wait between tries; each wait doubles and is randomised by ±20 %"
    )
    retry_max_backoff: Duration = Field(5.0, ge=0, description="longest wait between tries, jitter included")
    lease_ttl: Duration = Field(
        15.0, gt=0, description="a manager that stops renewing its cluster claims loses them after this"
    )
    heartbeat_interval: Duration = Field(5.0, gt=0, description="how often a manager renews its claims")

    @model_validator(mode="after")
    def _consistent(self) -> PostgresOptions:
        if not _IDENTIFIER.match(self.schema_name):
            raise ValueError(
                f"schema {self.schema_name!r} must be a lower-case SQL identifier (letters, digits, _)"
            )
        if self.pool_max_size < max(self.pool_min_size, 1):
            raise ValueError(
                f"pool_max_size ({self.pool_max_size}) must not be below pool_min_size ({self.pool_min_size})"
            )
        if self.heartbeat_interval >= self.lease_ttl:
            raise ValueError(
                f"heartbeat_interval ({self.heartbeat_interval}s) must be shorter than "
                f"lease_ttl ({self.lease_ttl}s), or claims expire between heartbeats"
            )
        if self.retry_max_backoff < self.retry_initial_backoff:
            raise ValueError("retry_max_backoff must not be below retry_initial_backoff")
        return self

    @property
    def retry_backoff(self) -> BackoffPolicy:
        """The pacing of retries: from ``retry_initial_backoff``, doubling, up to ``retry_max_backoff``,
        each wait ±20 % so managers retrying after the same blip spread out."""
        return BackoffPolicy(initial=self.retry_initial_backoff, max=self.retry_max_backoff)


def parse_options(options: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> PostgresOptions:
    """Validate ``storage.options``; a bad key raises ``StorageError`` naming ``storage.options.<key>``."""
    environ = os.environ if environ is None else environ
    data = dict(options)
    if not data.get("dsn") and environ.get(DSN_ENV):
        data["dsn"] = environ[DSN_ENV]
    try:
        parsed = PostgresOptions.model_validate(data)
    except ValidationError as exc:
        problems = []
        for item in exc.errors():
            where = ".".join(str(p) for p in item["loc"])
            message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
            message = message.removeprefix("Value error, ")
            problems.append(f"storage.options{'.' + where if where else ''}: {message}")
        raise StorageError("invalid postgres storage options: " + "; ".join(problems)) from None
    if not parsed.dsn:
        raise StorageError(
            f"postgres storage needs a connection string: set storage.options.dsn, "
            f"NAVIGATOR_MANAGER__STORAGE__OPTIONS__DSN or {DSN_ENV}"
        )
    return parsed
