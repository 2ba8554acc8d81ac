"""What a collector plugin provides: which API to list and how to turn an object into a Resource.

The edge core does the listing (paging, retries, watches); a collector only
declares where its kind lives and converts one raw JSON object, so a plugin for
a custom resource is a few lines.

The fast path: a collector that declares ``item_type`` (a ``msgspec.Struct`` of
just the fields it reads) has every page decoded straight into that type, so the
rest of each object (often most of it) is never materialised, and
``to_resource`` receives Struct instances instead of dicts.

How the kind reads in a table is declared here too, as a CRD declares its
``additionalPrinterColumns``: ``columns`` (``navigator query KIND`` shows them after
CLUSTER, NAMESPACE and NAME, the ``wide`` ones only with ``-o wide``) and
``short_names`` (``navigator query po``). The manager serves them to its clients.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from navigator.resource import Resource

RawObject = dict[str, Any]

#: How a column's value is shown: as text (lists joined by commas, maps as k=v), a number, true/false,
#: an age (``date``: an RFC 3339 time shown as 5m, 3h, 2d), ports (``80/TCP→8080``), or the ready
#: members of a list of objects with a ``ready`` field (``ready-count``: ``2/3``).
COLUMN_TYPES = ("string", "integer", "number", "boolean", "date", "ports", "ready-count")

#: A field of the row as ``navigator query KIND -o json`` prints it: ``.pod_ip``, ``.owner.name``,
#: ``.containers[0]``, ``.labels.app``; a dot inside a key is escaped: ``.labels.app\\.kubernetes\\.io/name``.
_PATH = re.compile(r"(\.(?:[A-Za-z_]|\\\.)(?:[\w/-]|\\\.)*|\[\d+\])+")


@dataclass(frozen=True, slots=True)
class Column:
    """One table column of a kind, like a CRD's ``additionalPrinterColumns`` entry.

    ``name`` is the header (shown upper-case, e.g. ``IP``); ``path`` the field of
    the kind's row (``navigator query KIND -o json``) it shows, e.g. ``.pod_ip``;
    ``wide`` columns show only with ``-o wide`` (kubectl's priority above 0), so
    the default table stays narrow; ``type`` is one of :data:`COLUMN_TYPES`.
    """

    name: str
    path: str
    wide: bool = False
    type: str = "string"
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError(f"column {self.path!r}: the name is empty")
        if not _PATH.fullmatch(self.path):
            raise ValueError(
                f"column {self.name!r}: path {self.path!r} is not a field path such as .pod_ip or .owner.name"
            )
        if self.type not in COLUMN_TYPES:
            raise ValueError(f"column {self.name!r}: type {self.type!r} is not one of {', '.join(COLUMN_TYPES)}")


@dataclass(frozen=True, slots=True)
class Collector:
    """A kind the edge can collect.

    ``name`` is the user-facing plugin name and the resource ``kind`` on the
    wire and in queries (``"pods"``). ``api_version`` is ``"v1"`` for the core
    group or ``"<group>/<version>"``; ``plural`` is the REST resource name.
    ``to_resource`` takes a :data:`~navigator.interfaces.RawObject`, or an ``item_type`` instance
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
    #: The kind's table columns after CLUSTER, NAMESPACE and NAME; none: a generic table (its VERSION).
    columns: tuple[Column, ...] = ()
    #: Other names ``navigator query`` accepts for the kind, as kubectl's (``po`` for ``pods``).
    short_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for column in self.columns:
            if not isinstance(column, Column):
                raise TypeError(f"collector {self.name!r}: columns must be Column records, got {column!r}")
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
