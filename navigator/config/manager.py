"""The manager's YAML file (``navigator manager --config manager.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, PlainSerializer, field_validator, model_validator

from navigator.config.common import (
    DEFAULT_MAX_MESSAGE,
    LoggingConfig,
    MetricsConfig,
    Section,
    ServerTLSConfig,
    TransportSection,
    effective_transport,
    reject_moved,
)
from navigator.config.edge import check_address
from navigator.config.identity import default_instance_id
from navigator.config.types import Duration, Size, parse_duration
from navigator.interfaces.transport import ManagerEndpoint
from navigator.protocol import check_cluster_id


class StorageSection(Section):
    plugin: str = "sqlite"
    #: Left out: the SQLite default (``path: navigator.db``) for sqlite, none for any other plugin.
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _plugin_defaults(self) -> StorageSection:
        """The SQLite default path must not leak into another plugin's options (``storage: {plugin: postgres}``
        failed with ``storage.options.path: unknown key``)."""
        if "options" not in self.model_fields_set and self.plugin == "sqlite":
            self.options = {"path": "navigator.db"}
        return self


class ReaderSection(Section):
    """One reader of the query service (``navigator query``, ``navigator watch``)."""

    name: str = Field(..., min_length=1, description="who this is, for logs")
    token: str | None = Field(None, min_length=1, description="bearer token; or token_file")
    token_file: Path | None = Field(None, description="file holding the bearer token")
    #: mTLS: a client certificate identity (CN or DNS SAN) that reads as this reader.
    identity: str | None = Field(None, min_length=1)
    clusters: list[str] | None = Field(None, description="the clusters this reader may see; omitted: all")

    @model_validator(mode="after")
    def _credential(self) -> ReaderSection:
        given = [n for n in ("token", "token_file", "identity") if getattr(self, n) is not None]
        if not given:
            raise ValueError("a reader needs token, token_file or identity")
        if self.token is not None and self.token_file is not None:
            raise ValueError("give token or token_file, not both")
        for cluster in self.clusters or []:
            check_cluster_id(cluster)
        return self


class AuthSection(Section):
    """Omitted entirely: no authentication (the manager logs a loud warning)."""

    tokens: dict[str, str] = Field(default_factory=dict, description="cluster id -> token")
    tokens_file: Path | None = Field(None, description="YAML mapping cluster id -> token, merged into tokens")
    #: mTLS: client certificate identity (CN or DNS SAN) -> cluster id.
    identities: dict[str, str] = Field(default_factory=dict)
    #: Query readers; none configured: queries are open (the manager warns at startup).
    readers: list[ReaderSection] = Field(default_factory=list)

    @field_validator("tokens")
    @classmethod
    def _ids(cls, value: dict[str, str]) -> dict[str, str]:
        for cluster, token in value.items():
            check_cluster_id(cluster)
            if not token:
                raise ValueError(f"empty token for cluster {cluster!r}")
        return value


class LimitsSection(Section):
    max_message_size: Size = Field(DEFAULT_MAX_MESSAGE, ge=64 * 1024)
    max_resources_per_state: int = Field(2_000_000, ge=1)
    max_payload_bytes: Size = Field(4 * 1024 * 1024, ge=1024)
    max_chunks: int = Field(10_000, ge=1)
    #: An Identify larger than this is refused before anything of it is logged or echoed.
    max_identify_bytes: Size = Field(64 * 1024, ge=1024)
    #: Kind errors per state, and bytes of each error's message (longer ones are cut).
    max_kind_errors: int = Field(64, ge=1)
    max_error_message_bytes: Size = Field(4096, ge=64)
    #: Bytes of chunk sets buffered until complete: per edge stream, and for all streams together.
    max_chunk_bytes_per_edge: Size = Field(512 * 1024 * 1024, ge=64 * 1024)
    max_chunk_bytes_total: Size = Field(2 * 1024 * 1024 * 1024, ge=64 * 1024)
    #: Incomplete chunk sets older than this are dropped.
    chunk_timeout: Duration = Field(300.0, gt=0)


class StatusSection(Section):
    """HEALTHY while the last sync is younger than interval * stale_after + slack,
    and the copy (as of the edge's observation time of the last applied state) younger than max_age."""

    stale_after: float = Field(2.0, ge=1.0, description="multiples of the edge's declared interval")
    slack: Duration = Field(10.0, ge=0)
    max_age: Duration | None = Field(
        None,
        gt=0,
        description="a connected cluster whose copy is older than this is STALE; unset: interval * stale_after + slack",
    )


class WatchSection(Section):
    """``navigator watch`` subscribers: each may fall this many changes behind before it is cut off."""

    buffer: int = Field(10_000, ge=1, description="changes a watcher may have pending before it is disconnected")


def _retention(value: Any) -> float:
    # YAML reads a bare `off` as false.
    if (
        value is False
        or value is None
        or (isinstance(value, str) and value.strip().lower() in ("off", "none"))
    ):
        return 0.0
    return parse_duration(value)


Retention = Annotated[
    float,
    BeforeValidator(_retention),
    PlainSerializer(lambda v: v, return_type=float),
    Field(json_schema_extra={"description": "seconds, a string like 7d, or off"}),
]


class HistorySection(Section):
    """Every applied change is kept for ``retention`` (``off``: none), pruned in the background."""

    retention: Retention = Field(7 * 86400.0, description="how long changes are kept; off keeps none")
    max_rows: int | None = Field(
        10_000_000, ge=1, description="the oldest changes beyond this many are pruned"
    )
    prune_interval: Duration = Field(300.0, gt=0, description="how often old changes are pruned")

    @property
    def enabled(self) -> bool:
        return self.retention > 0


class HttpSection(Section):
    """The HTTP API, its OpenAPI document and the dashboard, served by the manager process itself.

    Omitted (or ``listen: null``): no HTTP port. The readers of ``auth.readers`` guard it as they guard
    the gRPC query service.
    """

    listen: str | None = Field(None, description="host:port to serve the HTTP API and dashboard on; null: off")

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return check_address(value) if value is not None else None

    @property
    def enabled(self) -> bool:
        return self.listen is not None


class SinkSection(Section):
    plugin: str
    options: dict[str, Any] = Field(default_factory=dict)


class ManagerPlugins(Section):
    serializers: list[str] = Field(default_factory=lambda: ["json", "protobuf"], min_length=1)
    transport: str | None = Field(None, description="older spelling of transport.plugin")


class ManagerConfig(Section):
    manager_id: str = Field(default_factory=default_instance_id)
    listen: str = Field("127.0.0.1:50051", description="host:port to serve sync and query on")
    tls: ServerTLSConfig = Field(default_factory=ServerTLSConfig)
    transport: TransportSection = Field(default_factory=TransportSection)
    storage: StorageSection = Field(default_factory=StorageSection)
    grace_period: Duration = Field(
        30.0, ge=0, description="after a disconnect, only the same edge may reclaim"
    )
    #: Protocol 2 edges: heartbeats are answered, and a stream silent for 3 x this (while the manager
    #: waits for the edge) is ended, so a frozen or cut-off edge shows within 15 s by default.
    heartbeat: Duration = Field(5.0, ge=0, description="heartbeat period for protocol 2 edges; 0: off")
    stop_timeout: Duration = Field(
        60.0, gt=0, description="on SIGTERM, exit after this long even if a step of the shutdown still hangs"
    )
    auth: AuthSection | None = None
    limits: LimitsSection = Field(default_factory=LimitsSection)
    status: StatusSection = Field(default_factory=StatusSection)
    sinks: list[SinkSection] = Field(default_factory=list)
    history: HistorySection = Field(default_factory=HistorySection)
    watch: WatchSection = Field(default_factory=WatchSection)
    http: HttpSection = Field(default_factory=HttpSection)
    plugins: ManagerPlugins = Field(default_factory=ManagerPlugins)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

    _listen = field_validator("listen")(classmethod(lambda cls, v: check_address(v)))

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        return reject_moved(data, ("keepalive",))

    @model_validator(mode="after")
    def _transport(self) -> ManagerConfig:
        explicit = "plugin" in self.transport.model_fields_set
        self.transport.plugin = effective_transport(self.transport, self.plugins.transport, explicit)
        return self

    def endpoint(self) -> ManagerEndpoint:
        """What the transport needs to serve."""
        return ManagerEndpoint(
            listen=self.listen,
            tls=self.tls.record(),
            max_message_size=self.limits.max_message_size,
            identities=tuple(self.auth.identities) if self.auth is not None else (),
        )

    def enabled_plugins(self) -> dict[str, list[str]]:
        return {
            "storage": [self.storage.plugin],
            "sinks": list(dict.fromkeys(s.plugin for s in self.sinks)),
            "serializers": self.plugins.serializers,
            "transports": [self.transport.plugin],
        }
