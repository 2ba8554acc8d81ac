"""The edge's YAML file (``navigator edge --config edge.yaml``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from navigator.config.common import (
    DEFAULT_MAX_MESSAGE,
    BackoffConfig,
    ClientTLSConfig,
    LoggingConfig,
    MetricsConfig,
    Section,
    TransportSection,
    effective_transport,
    reject_moved,
)
from navigator.config.identity import default_instance_id
from navigator.config.types import Duration, Size
from navigator.interfaces.transport import EdgeEndpoint
from navigator.protocol import check_cluster_id


class ClusterSection(Section):
    id: str = Field(description="unique cluster id, e.g. production-east")
    metadata: dict[str, str] = Field(default_factory=dict, description="region, environment, version, ...")

    _check_id = field_validator("id")(check_cluster_id)


class KubernetesSection(Section):
    kubeconfig: Path | None = Field(
        None, description="omitted: in-cluster config, then the default kubeconfig"
    )
    context: str | None = None
    page_size: int = Field(500, ge=1, le=10000, description="objects per list page (limit/continue)")
    request_timeout: Duration = Field(60.0, gt=0, description="per API request")
    retry_attempts: int = Field(5, ge=1, description="tries per collection before reporting an error")
    retry: BackoffConfig = Field(default_factory=lambda: BackoffConfig(initial=0.5, max=30.0))
    #: API servers send a bookmark on an open watch about once a minute: a watch that stays silent
    #: longer is presumed dead (a proxy or load balancer dropped it without closing) and reopened.
    watch_idle_timeout: Duration = Field(
        90.0, gt=0, description="a watch with no event or bookmark this long is reopened"
    )
    #: Before each liveness delta (watch mode) and every interval of a long collection, the edge asks
    #: the API for /version: no answer within this is reported to the manager as the API unreachable.
    probe_timeout: Duration | None = Field(
        None,
        gt=0,
        description="the API must answer GET /version within this; unset: half the sync interval, at most 10s",
    )

    @field_validator("kubeconfig")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None


class BufferConfig(Section):
    """The outgoing queue between the sync loop and the stream."""

    max_messages: int = Field(16, ge=1, description="queued ClusterState messages at most")
    #: drop_oldest: a newer full state supersedes queued ones; block: the sync loop waits.
    when_full: Literal["drop_oldest", "block"] = "drop_oldest"


class ManagerSection(Section):
    address: str = Field("127.0.0.1:50051", description="host:port of the manager")
    token: str | None = Field(None, description="bearer token bound to this cluster id")
    token_file: Path | None = None
    tls: ClientTLSConfig = Field(default_factory=ClientTLSConfig)
    connect_timeout: Duration = Field(10.0, gt=0)
    ack_timeout: Duration = Field(60.0, gt=0, description="wait this long for an ack, then reconnect")
    max_message_size: Size = Field(DEFAULT_MAX_MESSAGE, ge=64 * 1024)
    #: Chunks aim at this fraction of max_message_size.
    chunk_fraction: float = Field(0.5, gt=0.0, le=0.9)
    reconnect: BackoffConfig = Field(default_factory=lambda: BackoffConfig(initial=1.0, max=60.0))
    #: A wrong token, an unknown cluster or no common protocol gets the same answer every time; a claim
    #: held by another edge is a standby's wait and never counts.
    max_rejections: int = Field(
        5,
        ge=0,
        description="exit after this many permanent rejections in a row (wrong token, unknown cluster, "
        "unsupported protocol); 0: retry forever",
    )
    buffer: BufferConfig = Field(default_factory=BufferConfig)

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        return reject_moved(data, MOVED)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return check_address(value)

    @model_validator(mode="after")
    def _token(self) -> ManagerSection:
        if self.token is not None and self.token_file is not None:
            raise ValueError("give token or token_file, not both")
        return self

    def resolved_token(self) -> str | None:
        if self.token_file is not None:
            return self.token_file.expanduser().read_text().strip()
        return self.token

    def endpoint(self) -> EdgeEndpoint:
        """What the transport needs to connect; reads ``token_file`` anew each time (it may rotate)."""
        try:
            token = self.resolved_token()
        except OSError as exc:
            raise OSError(f"cannot read manager.token_file: {exc.strerror or exc}") from None
        return EdgeEndpoint(
            address=self.address,
            token=token,
            tls=self.tls.record(),
            connect_timeout=self.connect_timeout,
            max_message_size=self.max_message_size,
        )


#: Keys of ``manager:`` that became grpc transport options.
MOVED = ("keepalive", "compression")


def check_address(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid address {value!r}: expected host:port")
    return value


class AdaptiveConfig(Section):
    """Sync sooner while the cluster churns, relax when it is quiet."""

    enabled: bool = True
    min_interval: Duration = Field(5.0, gt=0)
    max_interval: Duration = Field(300.0, gt=0)
    #: Changed objects per sync above which the interval shortens.
    busy_changes: int = Field(50, ge=1)


class SyncSection(Section):
    interval: Duration = Field(30.0, gt=0, description="base time between syncs")
    adaptive: AdaptiveConfig = Field(default_factory=AdaptiveConfig)
    #: watch: send deltas from Kubernetes watches between full syncs; poll: full states only.
    mode: Literal["watch", "poll"] = "watch"
    #: With mode=watch, a full snapshot is still sent this often.
    full_resync_interval: Duration = Field(600.0, gt=0)
    #: With mode=watch, a watched change waits this long for others to leave with it.
    batch_window: Duration = Field(
        0.05, ge=0, le=60, description="how long watched changes gather before they are sent (watch mode)"
    )
    #: A burst larger than this leaves as several deltas; each delta's bytes are split into messages
    #: of at most ``manager.max_message_size`` x ``manager.chunk_fraction``.
    batch_max_objects: int = Field(5000, ge=1, description="objects per delta at most (watch mode)")

    @model_validator(mode="after")
    def _bounds(self) -> SyncSection:
        """An explicit interval is honoured: adaptive bounds left at their defaults widen to take it in
        (``interval: 2s`` was refused because the default minimum is 5 s); bounds that were set must hold it."""
        a = self.adaptive
        if "min_interval" not in a.model_fields_set and self.interval < a.min_interval:
            a.min_interval = self.interval
        if "max_interval" not in a.model_fields_set and self.interval > a.max_interval:
            a.max_interval = self.interval
        if a.min_interval > a.max_interval:
            raise ValueError(
                f"adaptive.min_interval ({a.min_interval}s) exceeds max_interval ({a.max_interval}s)"
            )
        if not a.min_interval <= self.interval <= a.max_interval:
            raise ValueError(
                f"interval ({self.interval}s) must lie between adaptive.min_interval ({a.min_interval}s) "
                f"and adaptive.max_interval ({a.max_interval}s)"
            )
        return self


class EdgePlugins(Section):
    collectors: list[str] = Field(
        default_factory=lambda: ["services", "endpointslices", "pods"], min_length=1
    )
    serializers: list[str] = Field(default_factory=lambda: ["json", "protobuf"], min_length=1)
    transport: str | None = Field(None, description="older spelling of transport.plugin")


class EdgeConfig(Section):
    edge_id: str = Field(default_factory=default_instance_id, description="unique per edge process")
    cluster: ClusterSection
    kubernetes: KubernetesSection = Field(default_factory=KubernetesSection)
    manager: ManagerSection = Field(default_factory=ManagerSection)
    transport: TransportSection = Field(default_factory=TransportSection)
    sync: SyncSection = Field(default_factory=SyncSection)
    plugins: EdgePlugins = Field(default_factory=EdgePlugins)
    logging: LoggingConfig = Field(default_factory=LoggingConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)

    @model_validator(mode="after")
    def _transport(self) -> EdgeConfig:
        explicit = "plugin" in self.transport.model_fields_set
        self.transport.plugin = effective_transport(self.transport, self.plugins.transport, explicit)
        return self

    def enabled_plugins(self) -> dict[str, list[str]]:
        return {
            "collectors": self.plugins.collectors,
            "serializers": self.plugins.serializers,
            "transports": [self.transport.plugin],
        }
