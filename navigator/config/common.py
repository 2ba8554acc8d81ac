"""Settings shared by edge and manager configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from navigator.config.types import Duration, Size


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


class KeepaliveConfig(Section):
    time: Duration = Field(30.0, description="ping after this long without activity")
    timeout: Duration = Field(10.0, description="close the connection if a ping is not answered")
    permit_without_calls: bool = True


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


MessageSize = Size
DEFAULT_MAX_MESSAGE = 64 * 1024 * 1024
__all__ = [
    "DEFAULT_MAX_MESSAGE",
    "BackoffConfig",
    "ClientTLSConfig",
    "KeepaliveConfig",
    "LoggingConfig",
    "MessageSize",
    "MetricsConfig",
    "Section",
    "ServerTLSConfig",
]
