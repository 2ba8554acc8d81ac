"""What a collector plugin provides: which API to list and how to turn an object into a Resource.

The edge core does the listing (paging, retries, watches); a collector only
declares where its kind lives and converts one raw JSON object, so a plugin for
a custom resource is a few lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from navigator.resource import Resource

RawObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Collector:
    """A kind the edge can collect.

    ``name`` is the user-facing plugin name and the resource ``kind`` on the
    wire and in queries (``"pods"``). ``api_version`` is ``"v1"`` for the core
    group or ``"<group>/<version>"``; ``plural`` is the REST resource name.
    """

    name: str
    api_version: str
    plural: str
    to_resource: Callable[[RawObject], Resource]
    namespaced: bool = True
    #: Optional label selector applied server-side when listing and watching.
    label_selector: str | None = None

    @property
    def collection_path(self) -> str:
        """The all-namespaces list path, e.g. ``/apis/discovery.k8s.io/v1/endpointslices``."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/{self.plural}"
