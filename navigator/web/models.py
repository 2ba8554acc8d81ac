"""The shapes the HTTP API answers with, for its OpenAPI document.

Rows are those of ``navigator query -o json``; kind rows carry the collector's fields
beyond the documented ones, hence ``extra="allow"``. Routes send the JSON themselves
(no validation per row on the way out: a page of pods is serialised once, in C),
and the property-based API tests check every answer against these schemas.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Problem(BaseModel):
    """Why a request was refused: the core's status name and its message."""

    code: str
    message: str


class ErrorBody(BaseModel):
    detail: Problem | list[Any] | str


class ClusterError(BaseModel):
    kind: str
    message: str
    http_status: int
    cached: bool
    since: str | None


class ClusterRow(BaseModel):
    """A ``navigator query clusters -o json`` row; ``age_seconds`` is the copy's age when answered."""

    cluster: str
    edge_id: str
    status: str = Field(description="INITIALIZING, HEALTHY, STALE or DISCONNECTED")
    status_reason: str
    connected: bool
    last_sync: str | None
    last_seen: str | None
    fresh_as_of: str | None
    age_seconds: float | None
    lag_seconds: float | None
    sync_interval: float
    manager_id: str
    metadata: dict[str, str]
    counts: dict[str, int]
    errors: list[ClusterError]


class Clusters(BaseModel):
    items: list[ClusterRow]


class ResourceRow(_Open):
    """A resource row: ``kind`` and ``data`` in the ``resources`` view, the kind's fields in a kind view."""

    cluster: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    labels: dict[str, str]


class ResourcePage(BaseModel):
    items: list[ResourceRow]
    count: int
    continue_: str | None = Field(alias="continue", description="give it back as ?continue= for the next page")


class ChangeRow(BaseModel):
    """A ``navigator query changes -o json`` row, and an event of the live feed."""

    type: str
    cluster: str
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    old_resource_version: str | None
    applied_at: str | None
    observed_at: str | None
    changed_fields: list[str]
    labels: dict[str, str]
    data: Any


class ChangePage(BaseModel):
    items: list[ChangeRow]
    continue_: str | None = Field(alias="continue")


class DiffRow(BaseModel):
    type: str = Field(description="ADDED, REMOVED or CHANGED")
    cluster: str
    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    old_resource_version: str | None
    changed_fields: list[str]
    labels: dict[str, str]
    data: Any


class DiffPage(BaseModel):
    items: list[DiffRow]
    continue_: str | None = Field(alias="continue")


class SliceSummary(BaseModel):
    name: str
    address_type: str | None
    endpoints: int
    ready: int
    serving: int
    terminating: int


class Endpoint(BaseModel):
    addresses: list[str]
    ready: bool
    serving: bool
    terminating: bool
    node_name: str | None
    zone: str | None
    slice: str
    pod: str | None
    pod_phase: str | None
    pod_ready: bool | None


class ServiceInCluster(_Open):
    cluster: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    type: str | None
    cluster_ip: str | None
    selector: dict[str, str] | None
    ports: list[Any] | None
    ready_endpoints: int
    serving_endpoints: int
    terminating_endpoints: int
    total_endpoints: int
    endpointslices: list[SliceSummary]
    endpoints: list[Endpoint]
    pods: list[ResourceRow]
    pods_truncated: bool


class ServiceView(BaseModel):
    namespace: str
    name: str
    clusters: list[ServiceInCluster]


class Health(BaseModel):
    status: str
