"""What a collector plugin provides: which API to list and how to turn an object into a Resource.

The edge core does the listing (paging, retries, watches); a collector only
declares where its kind lives and converts one raw JSON object, so a plugin for
a custom resource is a few lines.

The fast path: a collector that declares ``item_type`` (a ``msgspec.Struct`` of
just the fields it reads) has every page decoded straight into that type, so the
rest of each object (often most of it) is never materialised, and
``to_resource`` receives Struct instances instead of dicts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from navigator.resource import Resource

RawObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Collector:
    """A kind the edge can collect.

    ``name`` is the user-facing plugin name and the resource ``kind`` on the
    wire and in queries (``"pods"``). ``api_version`` is ``"v1"`` for the core
    group or ``"<group>/<version>"``; ``plural`` is the REST resource name.
    ``to_resource`` takes a :data:`RawObject`, or an ``item_type`` instance
    when ``item_type`` is set.
    """

    name: str
    api_version: str
    plural: str
    to_resource: Callable[[Any], Resource]
    namespaced: bool = True
    #: Optional label selector applied server-side when listing and watching.
    label_selector: str | None = None
    #: Optional ``msgspec.Struct`` class of the fields ``to_resource`` reads (the fast path):
    #: objects are decoded into it and fields it does not declare are skipped, never built.
    item_type: type[msgspec.Struct] | None = None

    def __post_init__(self) -> None:
        typed = self.item_type
        if typed is not None and not (isinstance(typed, type) and issubclass(typed, msgspec.Struct)):
            raise TypeError(
                f"collector {self.name!r}: item_type must be a msgspec.Struct class, got {typed!r}"
            )

    def convert(self, obj: RawObject) -> Resource:
        """``to_resource`` of one object parsed as a dict, converted to ``item_type`` first when set.

        The edge reads watch events this way, so one ``to_resource`` serves lists
        and watches; it is also the way to call a collector from a test. Raises
        ``msgspec.ValidationError`` when ``obj`` does not fit ``item_type``.
        """
        if self.item_type is None:
            return self.to_resource(obj)
        return self.to_resource(msgspec.convert(obj, self.item_type, strict=False))

    @property
    def collection_path(self) -> str:
        """The all-namespaces list path, e.g. ``/apis/discovery.k8s.io/v1/endpointslices``."""
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/{self.plural}"
