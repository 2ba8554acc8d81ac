"""Settings shared by edge and manager configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from navigator.config.types import Duration, Size
from navigator.errors import ConfigError
from navigator.interfaces.transport import DEFAULT_MAX_MESSAGE, ClientTLS, ServerTLS


def read_token_file(path: Path, key: str) -> str:
    """A bearer token kept in a file (stripped); ``ConfigError`` naming ``key`` when it is unreadable or empty."""
    try:
        token = path.expanduser().read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{key}: cannot read {path}: {reason}") from None
    if not token:
        raise ConfigError(f"{key}: {path} is empty")
    return token


class Section(BaseModel):
    """Every config section rejects unknown keys: a typo must not be silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class BackoffConfig(Section):
    """Exponential backoff with jitter: wait = min(max, initial * multiplier**attempt) ± jitter."""

    initial: Duration = Field(1.0, description="first wait")
    max: Duration = Field(60.0, description="longest wait")
    multiplier: float = Field(2.0, ge=1.0)
    jitter: float = Field(0.2, ge=0.0, le=1.0, description="fraction of the wait randomised")

    @model_validator(mode="after")
    def _ordered(self) -> BackoffConfig:
        if self.max < self.initial:
            raise ValueError(f"max ({self.max}s) must not be below initial ({self.initial}s)")
        return self


class TransportSection(Section):
    """The transport plugin and its own options (grpc: keepalive, compression)."""

    plugin: str = "grpc"
    options: dict[str, Any] = Field(default_factory=dict, description="validated by the transport plugin")


def effective_transport(transport: TransportSection, legacy: str | None, explicit: bool) -> str:
    """The transport name, honouring the older ``plugins.transport`` key when it does not contradict."""
    if legacy is None or legacy == transport.plugin:
        return transport.plugin
    if explicit:
        raise ValueError(
            f"plugins.transport ({legacy!r}) and transport.plugin ({transport.plugin!r}) differ: "
            "give transport.plugin only"
        )
    return legacy


def reject_moved(data: Any, keys: tuple[str, ...]) -> Any:
    """Point keys that became grpc transport options at their new home, not at "unknown key"."""
    if isinstance(data, dict) and (found := [key for key in keys if key in data]):
        raise ValueError("; ".join(f"{key} moved to transport.options.{key}" for key in found))
    return data


class LoggingConfig(Section):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    format: Literal["human", "json"] = "human"


class MetricsConfig(Section):
    """Prometheus metrics over HTTP; ``port: null`` turns them off."""

    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=0, le=65535)


class ServerTLSConfig(Section):
    cert_file: Path | None = None
    key_file: Path | None = None
    #: CA that signs client certificates; set to require mTLS.
    client_ca_file: Path | None = None

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None

    @model_validator(mode="after")
    def _pairs(self) -> ServerTLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("client_ca_file (mTLS) needs cert_file and key_file")
        return self

    def record(self) -> ServerTLS:
        return ServerTLS(cert_file=self.cert_file, key_file=self.key_file, client_ca_file=self.client_ca_file)


class ClientTLSConfig(Section):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Override the name checked against the server certificate.
    server_name: str | None = None

    @model_validator(mode="after")
    def _pairs(self) -> ClientTLSConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self

    def record(self) -> ClientTLS:
        return ClientTLS(
            enabled=self.enabled,
            ca_file=self.ca_file,
            cert_file=self.cert_file,
            key_file=self.key_file,
            server_name=self.server_name,
        )


MessageSize = Size
__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "BackoffConfig",
    "ClientTLSConfig",
    "LoggingConfig",
    "MessageSize",
    "MetricsConfig",
    "Section",
    "ServerTLSConfig",
    "TransportSection",
    "effective_transport",
    "reject_moved",
]
