"""How a kind reads in a table: the columns its collector declares (served by the manager), and their cells.

A collector declares its columns as a CRD declares ``additionalPrinterColumns``
(``navigator.plugin.Column``: a name, a field path into the kind's row, ``wide``,
a type); the manager describes the installed kinds to its clients, and this
module turns such a description into a ``Kind``: its short names, its columns
and a formatter per column. A kind nobody described (its collector is not
installed with the manager, or an older manager) gets a generic table:
CLUSTER, NAMESPACE, NAME, VERSION.

Field paths are the small JSONPath subset kubectl's ``--sort-by`` and column
paths use: ``.name``, ``.owner.name``, ``.containers[0]``, ``.labels.app``, with
a dot inside a key escaped (``.labels.app\\.kubernetes\\.io/name``); ``{.name}``
is the same.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from navigator.client.rows import COMMON_FIELDS
from navigator.client.times import human_duration

#: What a missing value shows as, as kubectl shows it: a table stays one word per cell.
NONE = "<none>"

Path = tuple[str | int, ...]


class PathError(ValueError):
    """A field path that is not one: the message says what is accepted."""


_TOKEN = re.compile(r"\.((?:[^.\[\]\\]|\\.)+)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


def parse_path(text: str) -> Path:
    """``.owner.name`` as ``("owner", "name")``; ``{...}`` and a leading ``$`` are allowed, as kubectl allows them."""
    body = text.strip()
    if body.startswith("{") and body.endswith("}"):
        body = body[1:-1].strip()
    body = body.removeprefix("$")
    if not body.startswith((".", "[")):
        raise PathError(f"{text!r} is not a field path: use one such as .name, .owner.name or .containers[0]")
    parts: list[str | int] = []
    at = 0
    while at < len(body):
        m = _TOKEN.match(body, at)
        if m is None:
            raise PathError(
                f"{text!r} is not a field path: cannot read {body[at:]!r} (use .field, [index] or ['key'])"
            )
        key, index, quoted = m.groups()
        parts.append(int(index) if index is not None else quoted if quoted is not None else re.sub(r"\\(.)", r"\1", key))
        at = m.end()
    return tuple(parts)


def path_text(path: Path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else "." + p.replace(".", "\\.") for p in path)


_MISSING = object()


def lookup(row: Any, path: Path, default: Any = None) -> Any:
    """The value at ``path`` in ``row``; ``default`` where it is missing."""
    value = row
    for part in path:
        if isinstance(part, int):
            if not isinstance(value, list) or not -len(value) <= part < len(value):
                return default
            value = value[part]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return default
    return value


def has(row: Any, path: Path) -> bool:
    return lookup(row, path, _MISSING) is not _MISSING


def getter(path: Path) -> Callable[[dict[str, Any]], Any]:
    """A fast ``lookup`` for one path: a plain key, the common case, is one ``dict.get``."""
    if len(path) == 1 and isinstance(path[0], str):
        key = path[0]
        return lambda row: row.get(key)
    return lambda row: lookup(row, path)


# -- cells ---------------------------------------------------------------------------


def text(value: Any) -> str:
    """A value as one table cell: lists joined by commas, maps as ``k=v``, missing or empty ``<none>``."""
    if value is None or value == "" or value == [] or value == {}:
        return NONE
    if isinstance(value, str):
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(text(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={text(v)}" for k, v in sorted(value.items()))
    return str(value)


def age(value: Any, now: datetime) -> str:
    if not isinstance(value, str) or not value:
        return NONE
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return human_duration((now - when).total_seconds())


def ports(value: Any) -> str:
    """Ports as ``80/TCP``, with ``→8080`` where the target port differs."""
    out = []
    for p in value if isinstance(value, list) else ():
        if not isinstance(p, dict):
            continue
        cell = f"{p.get('port')}/{p.get('protocol') or 'TCP'}"
        target = p.get("target_port")
        if target not in (None, "", p.get("port")):
            cell += f"→{target}"
        out.append(cell)
    return ",".join(out) or NONE


def ready_count(value: Any) -> str:
    """``ready/total`` of a list of objects with a ``ready`` field."""
    members = [m for m in value if isinstance(m, dict)] if isinstance(value, list) else []
    return f"{sum(1 for m in members if m.get('ready'))}/{len(members)}"


def formatter(kind: str, now: datetime) -> Callable[[Any], str]:
    """The cell of a column type; a type this client does not know shows as text (a newer collector's)."""
    if kind == "date":
        return lambda v: age(v, now)
    if kind == "ports":
        return ports
    if kind == "ready-count":
        return ready_count
    return text


# -- kinds ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: ``name`` (its header, upper-cased when shown) shows the row's ``path`` as ``type``."""

    name: str
    path: str
    wide: bool = False
    type: str = "string"
    description: str = ""

    def parsed(self) -> Path:
        return parse_path(self.path)


@dataclass(frozen=True, slots=True)
class Kind:
    """What a client knows about showing a kind: its columns after CLUSTER, NAMESPACE and NAME, and short names."""

    kind: str
    columns: tuple[Column, ...] = ()
    short_names: tuple[str, ...] = ()
    namespaced: bool = True

    @property
    def fields(self) -> tuple[str, ...]:
        """The top-level row keys the declared columns show: every row of the kind has them (``None`` if unset)."""
        keys: dict[str, None] = {}
        for column in self.columns:
            try:
                first = column.parsed()[0]
            except PathError:
                continue
            if isinstance(first, str) and first not in COMMON_FIELDS:
                keys.setdefault(first)
        return tuple(keys)


#: A kind nobody described: its version is what a generic row can say about it.
GENERIC_COLUMNS = (Column("version", ".resource_version"),)


def generic(kind: str) -> Kind:
    return Kind(kind, GENERIC_COLUMNS)


def kind_from_dict(info: Mapping[str, Any]) -> Kind:
    """A ``Kind`` from a ``QueryClient.kinds()`` entry; a column whose path does not parse is left out."""
    columns = []
    for c in info.get("columns", ()):
        column = Column(c["name"], c["path"], bool(c.get("wide")), c.get("type") or "string", c.get("description", ""))
        try:
            column.parsed()
        except PathError:
            continue
        columns.append(column)
    return Kind(
        info["kind"],
        tuple(columns) or GENERIC_COLUMNS,
        tuple(info.get("short_names", ())),
        bool(info.get("namespaced", True)),
    )


@dataclass(slots=True)
class Kinds:
    """The kinds a manager described, by name and by short name."""

    kinds: dict[str, Kind] = field(default_factory=dict)

    @classmethod
    def of(cls, infos: Iterable[Mapping[str, Any]]) -> Kinds:
        return cls({k.kind: k for k in map(kind_from_dict, infos)})

    def resolve(self, word: str) -> str | None:
        """The kind ``word`` names: a kind, one of its short names, or its name in the singular (``pod``)."""
        if word in self.kinds:
            return word
        for kind in self.kinds.values():
            if word in kind.short_names or word + "s" == kind.kind:
                return kind.kind
        return None

    def get(self, kind: str) -> Kind:
        return self.kinds.get(kind) or generic(kind)


# -- tables --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cell:
    """One column of a table being printed: its header and how a row gives its cell."""

    header: str
    cell: Callable[[dict[str, Any]], str]


def _cell(get: Callable[[dict[str, Any]], Any], show: Callable[[Any], str]) -> Callable[[dict[str, Any]], str]:
    return lambda row: show(get(row))


def cells(columns: Sequence[Column], now: datetime) -> list[Cell]:
    out = []
    for column in columns:
        get = getter(column.parsed())
        show = formatter(column.type, now)
        out.append(Cell(column.name.upper(), _cell(get, show)))
    return out


def labels_text(labels: Mapping[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((labels or {}).items())) or NONE
