"""Watch changes as the manager applies them, one line each, like kubectl get -w."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from navigator.cli.query import _check_selector, _client, _common, _exit_1_when_unreachable, resolve_kind
from navigator.client.columns import Column, Kind, Kinds, cells
from navigator.client.rows import COMMON_FIELDS, change_row, resource_row
from navigator.errors import NavigatorError

#: The change's own fields, ahead of the object's in a ``-o json`` line.
HEADER = ("type", "cluster", "kind", "namespace", "name", "uid", "resource_version", "old_resource_version",
          "applied_at", "observed_at", "changed_fields")  # fmt: skip


#: The change's fields an object field may not take over (the object has the same cluster, name, ...).
_RENAMED = frozenset(HEADER) - frozenset(COMMON_FIELDS)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "view", metavar="KIND",
        help="pods|po, services|svc, endpointslices|eps, a plugin's kind or short name, or resources (any kind)",
    )  # fmt: skip
    _common(parser, ("table", "wide", "json"))
    parser.add_argument("--namespace", "-n", default=None, help="only this namespace")
    parser.add_argument("-l", "--selector", default=None, help="label selector, e.g. app=web,tier!=db")
    parser.add_argument("--name", default=None, help="only objects with this name")
    parser.add_argument("--kind", default=None, help="(resources only) only this kind, e.g. pods or a plugin's kind")
    parser.add_argument("--initial", action="store_true", help="start with the matching objects, as ADDED")
    parser.set_defaults(run=run_watch)


def object_row(change: dict[str, Any], view: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    """The changed object as ``query VIEW -o json`` shows it, from a ``change_row``.

    A DELETED change has no object: empty labels, ``data`` null (``resources``) or the
    kind's ``fields`` null.
    """
    if view == "resources":
        return change
    data = change["data"]
    return resource_row({**change, "data": data if isinstance(data, dict) else {}}, view, fields)


def watch_row(change: dict[str, Any], view: str, fields: Sequence[str] = ()) -> dict[str, Any]:
    """A ``-o json`` line: the change's fields, then the object's.

    An object field named like one of the change's (a service's ``type``) is prefixed
    with the kind: ``service_type``; ``type`` stays ADDED, MODIFIED or DELETED.
    """
    if view == "resources":
        return change
    row = {key: change[key] for key in HEADER}
    for key, value in object_row(change, view, fields).items():
        if key in _RENAMED:
            key = f"{view.removesuffix('s')}_{key}"
        row[key] = value
    return row


class Lines:
    """Table lines printed as they come: columns as wide as the widest value so far, the header once."""

    def __init__(self, columns: Sequence[str], widths: Sequence[int] = ()) -> None:
        self.columns = [c.upper() for c in columns]
        self.widths = [max(len(c), w) for c, w in zip(self.columns, [*widths, *[0] * len(columns)], strict=False)]
        self.started = False

    def print(self, rows: Sequence[Sequence[Any]]) -> None:
        cells = [["" if v is None else str(v) for v in row] for row in rows]
        for row in cells:
            self.widths = [max(w, len(v)) for w, v in zip(self.widths, row, strict=True)]
        out = [] if self.started else [self._line(self.columns)]
        self.started = True
        out += [self._line(row) for row in cells]
        sys.stdout.write("".join(out))
        sys.stdout.flush()

    def _line(self, cells: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(cells, self.widths, strict=True)).rstrip() + "\n"


def _quiet_interrupt(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Ctrl-C is how a watch is meant to end: exit 0 at once, no traceback.

    The process leaves from the signal handler itself: a KeyboardInterrupt raised inside
    the gRPC stream's iteration could leave its channel (and so the interpreter's exit)
    waiting, and a watch has nothing to tidy up; what was printed is flushed first.
    """

    def leave(signum: int, frame: object) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        os._exit(0)

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, leave)
        try:
            return run(args)
        except KeyboardInterrupt:
            return 0

    return wrapper


def _print_json(rows: Iterable[dict[str, Any]]) -> None:
    out = sys.stdout.buffer
    out.write(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    out.flush()


def watch_columns(view: str, kind: Kind | None, wide: bool) -> list[Column]:
    """TYPE, then the object's columns as ``query`` shows them; a column named like the change's own
    (a service's TYPE) says whose it is (SERVICE-TYPE)."""
    columns = [Column("type", ".type"), Column("cluster", ".cluster")]
    if view == "resources":
        columns.append(Column("kind", ".kind"))
    columns += [Column("namespace", ".namespace"), Column("name", ".name")]
    if kind is None:
        return [*columns, Column("version", ".resource_version")]
    for c in kind.columns:
        if wide or not c.wide:
            name = f"{view.removesuffix('s')}-{c.name}" if c.name.lower() == "type" else c.name
            columns.append(Column(name, c.path, c.wide, c.type))
    return columns


@_quiet_interrupt
@_exit_1_when_unreachable
def run_watch(args: argparse.Namespace) -> int:
    _check_selector(args.selector)
    with _client(args) as client:
        if args.view == "resources":
            view, kind, wanted = "resources", None, args.kind
        else:
            if args.kind is not None:
                raise NavigatorError(f"--kind is for `navigator watch resources`; `watch {args.view}` names its kind")
            kind = resolve_kind(args.view, Kinds.of(client.kinds()))
            view = wanted = kind.kind
        fields = kind.fields if kind is not None else ()
        columns = watch_columns(view, kind, wide=args.output == "wide")
        lines = Lines([c.name for c in columns], widths=[len("MODIFIED")])
        pages = client.watch_pages(
            kind=wanted, cluster=args.cluster, namespace=args.namespace, selector=args.selector, name=args.name,
            initial=args.initial,
        )  # fmt: skip
        for page in pages:
            changes = [change_row(record) for record in page]
            if args.output == "json":
                _print_json(watch_row(change, view, fields) for change in changes)
            else:
                table = cells(columns[1:], datetime.now(UTC))  # ages as of this page
                objects = [(change["type"], object_row(change, view, fields)) for change in changes]
                lines.print([(kind_of_change, *(c.cell(row) for c in table)) for kind_of_change, row in objects])
    return 0
