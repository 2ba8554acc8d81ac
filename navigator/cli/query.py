"""Query the manager across clusters, now or in the past."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any

from navigator.cli import argtypes
from navigator.cli.output import (
    JsonPathTemplate,
    OutputError,
    TableWriter,
    add_output_argument,
    print_json,
    print_json_blocks,
    print_jsonpath,
    print_lines,
    print_table,
    print_yaml,
    short_duration,
)
from navigator.client.client import (
    DEFAULT_ADDRESS,
    InvalidQuery,
    NotAuthorized,
    QueryClient,
    QueryError,
    manager_address,
)
from navigator.client.columns import (
    Column,
    Kind,
    Kinds,
    PathError,
    cells,
    formatter,
    getter,
    has,
    labels_text,
    parse_path,
    path_text,
    ports,
    text,
)
from navigator.client.rows import RecordError, copy_age, json_rows, view_rows
from navigator.client.times import TimeError, parse_time, rfc3339
from navigator.errors import NavigatorError
from navigator.exit_codes import EXIT_FAILURE, EXIT_USAGE

TIME_HELP = "RFC 3339 (2026-12-03T08:00:00Z) or an age such as 10m, 1h, 2d meaning that long ago"

#: ``-o`` in listings of objects; the other commands take all but ``wide`` and ``name`` alike.
LISTING_FORMATS = ("table", "wide", "json", "yaml", "name", "jsonpath")
OTHER_FORMATS = ("table", "json", "yaml", "jsonpath")

NAMESPACES_HELP = (
    "every namespace (the default: a listing across clusters shows them all, and so does `query service` "
    "without -n; kubectl's -A)"
)


def _manager(text: str) -> str:
    try:
        return manager_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _common(parser: argparse.ArgumentParser, formats: Sequence[str] = OTHER_FORMATS) -> None:
    parser.add_argument(
        "--manager",
        type=_manager,
        default=os.environ.get("NAVIGATOR_MANAGER", DEFAULT_ADDRESS),
        metavar="HOST[:PORT]",
        help=f"the manager's address, port 50051 unless given (default: $NAVIGATOR_MANAGER or {DEFAULT_ADDRESS})",
    )
    parser.add_argument("--cluster", default=None, help="only this cluster id")
    parser.add_argument(
        "--timeout", type=argtypes.duration, default=30.0, metavar="DURATION",
        help="how long to wait for the manager: seconds or 30s, 2m (default 30s)",
    )  # fmt: skip
    auth = parser.add_argument_group("reader authentication (auth.readers in the manager's config)")
    token = auth.add_mutually_exclusive_group()
    token.add_argument("--token", default=None, help="a reader's bearer token (default: $NAVIGATOR_TOKEN)")
    token.add_argument("--token-file", type=Path, default=None, help="a file holding a reader's bearer token")
    tls = parser.add_argument_group("TLS")
    tls.add_argument("--tls", action="store_true", help="connect with TLS")
    tls.add_argument("--ca-file", type=Path, default=None, help="CA bundle that signs the manager's certificate")
    tls.add_argument("--cert-file", type=Path, default=None, help="client certificate (mTLS)")
    tls.add_argument("--key-file", type=Path, default=None, help="client key (mTLS)")
    tls.add_argument("--server-name", default=None, help="name to check the manager's certificate against")
    add_output_argument(parser, formats)


def _filters(parser: argparse.ArgumentParser, kind: bool, name: bool = True, limit: bool = True) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--namespace", "-n", default=None, help="only this namespace")
    where.add_argument("-A", "--all-namespaces", action="store_true", help=NAMESPACES_HELP)
    parser.add_argument("-l", "--selector", default=None, help="label selector, e.g. app=web,tier!=db")
    if name:
        parser.add_argument("--name", default=None, help="only objects with this name")
    if limit:
        parser.add_argument(
            "--limit", type=argtypes.positive_int, default=None, metavar="N", help="at most this many rows (1 or more)"
        )
    if kind:
        parser.add_argument("--kind", default=None, help="only this kind (collector name), e.g. pods")


def _listing(parser: argparse.ArgumentParser) -> None:
    """kubectl's habits for listings of objects."""
    shown = parser.add_argument_group("what is shown (as kubectl get)")
    shown.add_argument(
        "--sort-by", default=None, metavar="FIELD",
        help="sort by a field of the -o json rows (.name, .restarts, .labels.app) or a column (RESTARTS)",
    )  # fmt: skip
    shown.add_argument("--show-labels", action="store_true", help="a LABELS column, as the last one")
    shown.add_argument("--no-headers", action="store_true", help="no header line in tables")
    shown.add_argument(
        "-w", "--watch", action="store_true",
        help="list, then watch for changes (navigator watch --initial with the same filters)",
    )  # fmt: skip


def _at(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--at", default=None, metavar="TIME", help=f"as it was at TIME (within history retention): {TIME_HELP}"
    )


def _exit_1_when_unreachable(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """An unreachable or failing manager is exit status 1 (a usage or config problem stays 2)."""

    @functools.wraps(run)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except InvalidQuery as exc:  # the manager refused the arguments: still a usage problem
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except OutputError as exc:  # a bad --sort-by field or template, found once the rows came
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except NotAuthorized as exc:
            hint = ""
            given = args.token is not None or args.token_file is not None or os.environ.get("NAVIGATOR_TOKEN")
            if exc.code == "UNAUTHENTICATED" and not given:
                hint = " (give a reader's token: --token, --token-file or $NAVIGATOR_TOKEN)"
            print(f"error: {exc}{hint}", file=sys.stderr)
            return EXIT_FAILURE
        except (QueryError, RecordError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        except BrokenPipeError:
            # `navigator query pods -o json | head`: the reader left; stop quietly, and keep the
            # interpreter's final flush of stdout from failing again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0

    return wrapper


class _AnyKind(dict[str, argparse.ArgumentParser]):
    """The sub-commands of ``navigator query``, where any other word is a kind (``pods``, ``po``, a plugin's).

    Which words name kinds is the manager's to say (its collectors declare their
    names and short names), so argparse cannot know them: a word that is not a
    sub-command gets the kind parser, and the command resolves it when it runs.
    """

    def __init__(self, parsers: dict[str, argparse.ArgumentParser], kind: argparse.ArgumentParser) -> None:
        super().__init__(parsers)
        self.kind = kind

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and not word.startswith("-")

    def __missing__(self, word: str) -> argparse.ArgumentParser:
        return self.kind


def _kind_parser(p: argparse.ArgumentParser, resources: bool) -> None:
    p.add_argument("object_name", nargs="?", default=None, metavar="NAME", help="only objects with this name")
    _common(p, LISTING_FORMATS)
    _filters(p, kind=resources)
    _at(p)
    _listing(p)
    p.set_defaults(run=run_resources)
    if resources:
        p.set_defaults(view="resources")
    else:
        p.set_defaults(kind=None)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Query the manager across clusters, now or in the past. KIND is a kind or its short name as the "
        "collectors declare them: pods (po), services (svc), endpointslices (eps), or a plugin's kind. "
        "Listings show every namespace unless -n is given (-A says so explicitly), and `query service` too."
    )
    sub = parser.add_subparsers(dest="view", metavar="VIEW", required=True)
    clusters = sub.add_parser("clusters", help="every cluster: status and why, freshness, edge, last sync, counts")
    _common(clusters)
    _at(clusters)
    clusters.set_defaults(run=run_clusters)
    kind = sub.add_parser(
        "KIND", help="objects of a kind: pods|po, services|svc, endpointslices|eps, or a plugin's kind or short name"
    )
    _kind_parser(kind, resources=False)
    resources = sub.add_parser("resources", help="any kind, raw data")
    _kind_parser(resources, resources=True)
    changes = sub.add_parser("changes", help="recorded changes, newest first: what changed, where, when, which fields")
    _common(changes)
    _filters(changes, kind=True)
    changes.add_argument("--since", default=None, metavar="TIME", help=f"changes applied at or after TIME: {TIME_HELP}")
    changes.add_argument("--until", default=None, metavar="TIME", help="changes applied at or before TIME")
    changes.set_defaults(run=run_changes)
    diff = sub.add_parser("diff", help="what was added, removed and changed between two times")
    _common(diff)
    _filters(diff, kind=True, name=False, limit=False)
    diff.add_argument("--from", dest="from_time", default=None, metavar="TIME", help=f"the earlier time: {TIME_HELP}")
    diff.add_argument("--to", dest="to_time", default=None, metavar="TIME", help="the later time (default: now)")
    diff.set_defaults(run=run_diff)
    service = sub.add_parser("service", help="one service in every cluster, with its endpoints and their pods")
    service.add_argument("service_name", metavar="NAME")
    where = service.add_mutually_exclusive_group()
    where.add_argument("--namespace", "-n", default=None, help="the service's namespace (default: every namespace)")
    where.add_argument("-A", "--all-namespaces", action="store_true", help=NAMESPACES_HELP)
    _common(service)
    service.set_defaults(run=run_service)
    sub._name_parser_map = sub.choices = _AnyKind(sub._name_parser_map, kind)


def _token(args: argparse.Namespace) -> str | None:
    """The reader's token: ``--token``, else ``--token-file``'s content, else ``$NAVIGATOR_TOKEN``."""
    if args.token is not None:
        return str(args.token)
    if args.token_file is not None:
        from navigator.config.common import read_token_file  # the config models only for this option

        return read_token_file(args.token_file, "--token-file")
    return os.environ.get("NAVIGATOR_TOKEN") or None


def _client(args: argparse.Namespace) -> QueryClient:
    tls = None
    if args.tls or args.ca_file or args.cert_file:
        from navigator.config.common import ClientTLSConfig  # pydantic only when TLS is asked for

        tls = ClientTLSConfig(
            enabled=True, ca_file=args.ca_file, cert_file=args.cert_file, key_file=args.key_file,
            server_name=args.server_name,
        )  # fmt: skip
    return QueryClient(args.manager, tls=tls, timeout=args.timeout, token=_token(args))


def _age(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "never"
    seconds = int((now - datetime.fromisoformat(stamp.replace("Z", "+00:00"))).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


def _time(flag: str, text: str | None, now: datetime) -> datetime | None:
    """A ``--at``/``--since``/... value as a UTC time; a bad or future one is a usage error."""
    if text is None:
        return None
    try:
        when = parse_time(text, now)
    except TimeError as exc:
        raise NavigatorError(f"{flag}: {exc}") from None
    if when > now:
        raise NavigatorError(f"{flag}: {rfc3339(when)} is in the future")
    return when


def _check_selector(text: str | None) -> None:
    if text is None:
        return
    from navigator.selectors import SelectorError, parse_selector  # only a -l needs the parser

    try:
        parse_selector(text)
    except SelectorError as exc:
        raise NavigatorError(f"-l: {exc}") from None


def _as_of(at: datetime | None) -> str | None:
    return f"as of {rfc3339(at)}" if at is not None else None


def _template(args: argparse.Namespace) -> JsonPathTemplate | None:
    output: str = args.output
    return JsonPathTemplate(output.removeprefix("jsonpath=")) if output.startswith("jsonpath=") else None


def _emit(
    args: argparse.Namespace,
    rows: Iterable[dict[str, Any]],
    table: Callable[[list[dict[str, Any]]], None],
    name: Callable[[dict[str, Any]], str] | None = None,
) -> None:
    """``rows`` as ``-o`` asks, for the commands whose table is built whole (clusters, changes, diff, service)."""
    template = _template(args)
    if args.output == "json":
        print_json(rows)
    elif args.output == "yaml":
        print_yaml(rows)
    elif template is not None:
        print_jsonpath(template, rows)
    elif args.output == "name" and name is not None:
        print_lines(map(name, rows))
    else:
        table(list(rows))


@_exit_1_when_unreachable
def run_clusters(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    at = _time("--at", args.at, now)
    _template(args)  # a bad one fails before the manager is asked
    with _client(args) as client:
        rows = client.clusters(args.cluster, at=at)
    asked = at or datetime.now(UTC)
    for r in rows:  # by this host's clock, at the time asked about
        r["age_seconds"] = copy_age(r["fresh_as_of"], asked)
    kinds = sorted({k for r in rows for k in r["counts"]})
    now = at or now

    def table(rows: list[dict[str, Any]]) -> None:
        print_table(
            ["cluster", "status", "freshness", "lag", "edge", "last sync", *kinds, "reason"],
            [
                (
                    r["cluster"], r["status"], short_duration(r["age_seconds"]), short_duration(r["lag_seconds"]),
                    r["edge_id"], _age(r["last_sync"], now), *(r["counts"].get(k, 0) for k in kinds), _reason(r),
                )
                for r in rows
            ],
            title=_as_of(at),
        )  # fmt: skip

    _emit(args, rows, table)
    return 0


def _reason(row: dict[str, Any]) -> str:
    """Why the status is not HEALTHY, which names the errors; from an older manager (no reason), the errors."""
    if row.get("status_reason"):
        return str(row["status_reason"])
    return "; ".join(f"{e['kind']}: {e['message']}" + (" (cached)" if e["cached"] else "") for e in row["errors"])


# -- listings of objects ---------------------------------------------------------------


def resolve_kind(word: str, kinds: Kinds) -> Kind:
    """The kind ``word`` names (a kind, a short name, a singular); a word the manager describes no kind for is
    a usage error naming the kinds it knows, unless it describes none (an older manager): then the word."""
    kind = kinds.resolve(word)
    if kind is not None:
        return kinds.get(kind)
    if not kinds.kinds:
        return kinds.get(word)
    known = ", ".join(
        f"{k.kind} ({', '.join(k.short_names)})" if k.short_names else k.kind for k in kinds.kinds.values()
    )
    raise NavigatorError(
        f"unknown kind {word!r}: the manager's collectors are {known} "
        f"(a kind whose collector is not installed with the manager: navigator query resources --kind KIND)"
    )


def table_columns(args: argparse.Namespace, view: str, kind: Kind | None, wide: bool) -> list[Column]:
    """The columns of a listing, as kubectl shows them: CLUSTER and NAMESPACE unless one is asked for
    (``--cluster``, ``-n``), NAME, the kind's own (``wide`` ones with ``-o wide``), LABELS with ``--show-labels``."""
    columns = []
    if not args.cluster:
        columns.append(Column("cluster", ".cluster"))
    if view == "resources" and not args.kind:
        columns.append(Column("kind", ".kind"))
    if not args.namespace and (kind is None or kind.namespaced):
        columns.append(Column("namespace", ".namespace"))
    columns.append(Column("name", ".name"))
    if kind is not None:
        columns += [c for c in kind.columns if wide or not c.wide]
    else:
        columns.append(Column("version", ".resource_version"))
    if args.show_labels:
        columns.append(Column("labels", ".labels"))
    return columns


def _page_cells(columns: Sequence[Column], now: datetime) -> Callable[[Sequence[dict[str, Any]]], list[tuple[str, ...]]]:
    """A page's cells, worked out a column at a time: a plain field (most of them) costs a list comprehension,
    not a call per cell, which is what keeps a 20,000-row table near the cost of its JSON."""
    plans: list[tuple[str | None, Callable[[Any], str] | None]] = []
    for cell, column in zip(cells(columns, now), columns, strict=True):
        path = column.parsed()
        if column.name == "labels" and path == ("labels",):
            plans.append((None, lambda row: labels_text(row.get("labels"))))
        elif column.type in ("string", "integer", "number") and len(path) == 1 and isinstance(path[0], str):
            plans.append((path[0], None))
        elif column.type == "date" and len(path) == 1 and isinstance(path[0], str):
            plans.append((path[0], _memo(formatter("date", now))))
        else:
            plans.append((None, cell.cell))

    def page_cells(page: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
        by_column: list[list[str]] = []
        for key, show in plans:
            if key is None:
                assert show is not None
                by_column.append([show(row) for row in page])
            elif show is None:
                values = [row.get(key) for row in page]
                by_column.append([v if v.__class__ is str and v else text(v) for v in values])
            else:
                by_column.append([show(row.get(key)) for row in page])
        return list(zip(*by_column, strict=True))

    return page_cells


def _memo(show: Callable[[Any], str]) -> Callable[[Any], str]:
    """``show`` remembered per value: many objects share a start time to the second."""
    seen: dict[Any, str] = {}

    def cell(value: Any) -> str:
        try:
            return seen[value]
        except KeyError:
            seen[value] = shown = show(value)
            return shown
        except TypeError:  # unhashable
            return show(value)

    return cell


def _sort_key(args: argparse.Namespace, columns: Sequence[Column]) -> tuple[str, Callable[[dict[str, Any]], Any]] | None:
    """``--sort-by`` as (its path, a sort key): a field path, or a column's header; missing values sort last."""
    given: str | None = args.sort_by
    if given is None:
        return None
    if given.strip().startswith(("{", ".", "[", "$")):
        try:
            path = parse_path(given)
        except PathError as exc:
            raise OutputError(f"--sort-by: {exc}") from None
    else:
        named = {c.name.lower(): c for c in columns}
        column = named.get(given.strip().lower())
        if column is None:
            raise OutputError(
                f"--sort-by: no column {given!r}: give a field path such as .name or a column: "
                f"{', '.join(c.name.upper() for c in columns)}"
            )
        path = column.parsed()
    get = getter(path)

    def key(row: dict[str, Any]) -> tuple[int, Any]:
        value = get(row)
        if value is None:
            return (3, "")
        if isinstance(value, bool | int | float):
            return (0, value)
        if isinstance(value, str):
            return (1, value)
        return (2, text(value))

    return path_text(path), key


def _sorted(rows: Iterable[dict[str, Any]], sort: tuple[str, Callable[[dict[str, Any]], Any]]) -> list[dict[str, Any]]:
    """All the rows, sorted (a sort needs them all); a field no row has is an error, as kubectl's."""
    path, key = sort
    every = list(rows)
    parsed = parse_path(path)
    if every and not any(has(row, parsed) for row in every):
        fields = ", ".join(f".{k}" for k in every[0])
        raise OutputError(f"--sort-by: no row has the field {path} (the rows' fields: {fields})")
    every.sort(key=key)
    return every


def object_name(view: str) -> Callable[[dict[str, Any]], str]:
    """``-o name``: ``CLUSTER/KIND/NAMESPACE/NAME`` (``CLUSTER/KIND/NAME`` without a namespace), which names
    one object among every cluster's."""

    def name(row: dict[str, Any]) -> str:
        kind = row.get("kind") or view
        namespace = row.get("namespace")
        return f"{row['cluster']}/{kind}/{namespace}/{row['name']}" if namespace else f"{row['cluster']}/{kind}/{row['name']}"

    return name


def _no_resources(args: argparse.Namespace) -> None:
    """As kubectl: a note on stderr, nothing on stdout, success."""
    print(f"No resources found{f' in {args.namespace} namespace' if args.namespace else ''}.", file=sys.stderr)


@_exit_1_when_unreachable
def run_resources(args: argparse.Namespace) -> int:
    _check_selector(args.selector)
    at = _time("--at", args.at, datetime.now(UTC))
    template = _template(args)
    if args.object_name is not None:
        if args.name is not None and args.name != args.object_name:
            raise NavigatorError(f"NAME {args.object_name!r} and --name {args.name!r} differ: give one")
        args.name = args.object_name
    if args.watch:
        return _watch(args)
    with _client(args) as client:
        if args.view == "resources":
            view, kind, wanted = "resources", None, args.kind
        else:
            kind = resolve_kind(args.view, Kinds.of(client.kinds()))
            view = wanted = kind.kind
        fields = kind.fields if kind is not None else ()
        columns = table_columns(args, view, kind, wide=args.output == "wide")
        # A column may be named even when only -o wide shows it; a bad one fails before the rows are asked for.
        sort = _sort_key(args, table_columns(args, view, kind, wide=True))
        pages = client.resource_pages(
            kind=wanted, cluster=args.cluster, namespace=args.namespace, selector=args.selector, name=args.name,
            limit=args.limit, at=at,
        )  # fmt: skip
        if args.output == "json" and sort is None:  # streamed: each page printed as it arrives
            print_json_blocks(json_rows(page, view, fields) for page in pages)
            return 0
        row_pages: Iterable[list[dict[str, Any]]] = (view_rows(page, view, fields) for page in pages)
        if sort is not None:
            every = _sorted(chain.from_iterable(row_pages), sort)
            row_pages = [every] if every else []
        rows: Iterator[dict[str, Any]] = chain.from_iterable(row_pages)
        if args.output == "json":
            print_json(rows)
        elif args.output == "yaml":
            print_yaml(rows)
        elif template is not None:
            print_jsonpath(template, rows)
        elif args.output == "name":
            first = next(rows, None)
            if first is None:
                _no_resources(args)
            else:
                print_lines(map(object_name(view), chain([first], rows)))
        elif not _print_pages(row_pages, columns, args.no_headers, _as_of(at), at or datetime.now(UTC)):
            _no_resources(args)
    return 0


def _print_pages(
    pages: Iterable[Sequence[dict[str, Any]]],
    columns: Sequence[Column],
    no_headers: bool,
    title: str | None,
    now: datetime,
) -> bool:
    """The table, page by page as the pages come; whether it had a row. Ages are as of ``now``: with
    ``--at``, the time asked about."""
    writer = TableWriter([c.name for c in columns], headers_shown=not no_headers, title=title)
    page_cells = _page_cells(columns, now)
    for page in pages:
        writer.write(page_cells(page))
    return writer.rows > 0


def _watch(args: argparse.Namespace) -> int:
    """``-w``: ``navigator watch`` with the same filters, starting with the objects (kubectl's ``get -w``)."""
    for flag, given in (("--at", args.at), ("--sort-by", args.sort_by), ("--limit", args.limit)):
        if given is not None:
            raise NavigatorError(f"-w/--watch cannot be used with {flag}: a watch shows changes as they come")
    if args.output not in ("table", "wide", "json"):
        raise NavigatorError(f"-w/--watch prints a table or JSON lines (-o table, wide or json), not -o {args.output}")
    from navigator.cli.watch import run_watch  # only a watch needs it

    args.initial = True
    return run_watch(args)


def _second(stamp: str | None) -> str:
    """An RFC 3339 time to the second, for tables."""
    if not stamp:
        return ""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%SZ")


@_exit_1_when_unreachable
def run_changes(args: argparse.Namespace) -> int:
    _check_selector(args.selector)
    _template(args)  # a bad one fails before the manager is asked
    now = datetime.now(UTC)
    since, until = _time("--since", args.since, now), _time("--until", args.until, now)
    if since is not None and until is not None and since > until:
        raise NavigatorError(f"--since {rfc3339(since)} is after --until {rfc3339(until)}")

    def table(rows: list[dict[str, Any]]) -> None:
        print_table(
            ["time", "type", "cluster", "kind", "namespace", "name", "rv", "fields"],
            [
                (_second(r["applied_at"]), r["type"], r["cluster"], r["kind"], r["namespace"], r["name"],
                 r["resource_version"], ",".join(r["changed_fields"]))
                for r in rows
            ],
        )  # fmt: skip

    with _client(args) as client:
        changes = client.changes(
            cluster=args.cluster,
            kind=args.kind,
            namespace=args.namespace,
            selector=args.selector,
            name=args.name,
            since=since,
            until=until,
            limit=args.limit,
        )
        _emit(args, changes, table)  # streamed, but for a table
    return 0


@_exit_1_when_unreachable
def run_diff(args: argparse.Namespace) -> int:
    _check_selector(args.selector)
    _template(args)
    if args.from_time is None:
        raise NavigatorError("--from is required: the earlier of the two times to compare")
    now = datetime.now(UTC)
    start, end = _time("--from", args.from_time, now), _time("--to", args.to_time, now)
    assert start is not None
    if end is not None and start > end:
        raise NavigatorError(f"--from {rfc3339(start)} is after --to {rfc3339(end)}")

    def version(r: dict[str, Any]) -> str:
        old, new = r["old_resource_version"], r["resource_version"]
        return f"{old}→{new}" if r["type"] == "CHANGED" and old != new else str(new)

    def table(rows: list[dict[str, Any]]) -> None:
        print_table(
            ["type", "cluster", "kind", "namespace", "name", "rv", "fields"],
            [(r["type"], r["cluster"], r["kind"], r["namespace"], r["name"], version(r), ",".join(r["changed_fields"]))
             for r in rows],
            title=f"from {rfc3339(start)} to {rfc3339(end) if end is not None else 'now'}",
        )  # fmt: skip

    with _client(args) as client:
        entries = client.diff(
            start, end, cluster=args.cluster, kind=args.kind, namespace=args.namespace, selector=args.selector
        )
        _emit(args, entries, table)
    return 0


def _yes(value: object) -> str:
    return "" if value is None else ("yes" if value else "no")


@_exit_1_when_unreachable
def run_service(args: argparse.Namespace) -> int:
    """One service in every cluster; without ``-n``, in every namespace that has one by that name."""
    _template(args)
    from navigator.client.joined import service_view  # only this command joins

    namespace = args.namespace
    with _client(args) as client:
        views = service_view(client, args.service_name, namespace, cluster=args.cluster)
    shown = f"{namespace}/{args.service_name}" if namespace else args.service_name
    if not views:
        where = "any cluster" if namespace else "any cluster or namespace"
        raise NavigatorError(f"service {shown} was not found in {where}")

    def table(views: list[dict[str, Any]]) -> None:
        rows = []
        blank = ("",) * (5 if namespace is None else 4)
        for v in views:
            head: tuple[str, ...] = (v["cluster"], v["type"] or "", v["cluster_ip"] or "", ports(v["ports"]))
            if namespace is None:
                head = (head[0], v["namespace"], *head[1:])
            if not v["endpoints"]:
                rows.append((*head, "-", "", "", "", ""))
            for i, e in enumerate(v["endpoints"]):
                rows.append(
                    (*(head if i == 0 else blank), ",".join(e["addresses"]), e["pod"] or "", e["node_name"] or "",
                     _yes(e["ready"]), _yes(e["pod_ready"]))
                )  # fmt: skip
        columns = ["cluster", "type", "cluster-ip", "ports", "endpoint", "pod", "node", "ready", "pod ready"]
        if namespace is None:
            columns.insert(1, "namespace")
        print_table(columns, rows, title=f"service {shown}")

    _emit(args, views, table)
    return 0
