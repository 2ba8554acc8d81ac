"""Query the manager across clusters, now or in the past."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from navigator.cli import argtypes
from navigator.cli.output import (
    add_output_argument,
    print_json,
    print_json_blocks,
    print_table,
    short_duration,
)
from navigator.client.client import DEFAULT_ADDRESS, InvalidQuery, NotAuthorized, QueryClient, QueryError
from navigator.client.joined import service_view
from navigator.client.rows import RecordError, copy_age, json_rows, view_rows
from navigator.client.times import TimeError, parse_time, rfc3339
from navigator.config.common import read_token_file
from navigator.errors import NavigatorError
from navigator.exit_codes import EXIT_FAILURE, EXIT_USAGE
from navigator.selectors import SelectorError, parse_selector

VIEWS = ("clusters", "services", "endpointslices", "pods", "resources")

TIME_HELP = "RFC 3339 (2026-12-03T08:00:00Z) or an age such as 10m, 1h, 2d meaning that long ago"


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--manager",
        default=os.environ.get("NAVIGATOR_MANAGER", DEFAULT_ADDRESS),
        metavar="HOST:PORT",
        help=f"the manager's address (default: $NAVIGATOR_MANAGER or {DEFAULT_ADDRESS})",
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
    add_output_argument(parser)


#: kubectl's short names for the built-in views (``navigator query po``).
SHORT_NAMES = {"pods": ["po"], "services": ["svc"], "endpointslices": ["eps"]}


def _filters(parser: argparse.ArgumentParser, kind: bool, name: bool = True, limit: bool = True) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--namespace", "-n", default=None, help="only this namespace")
    where.add_argument(
        "-A", "--all-namespaces", action="store_true", help="every namespace (the default; as kubectl takes it)"
    )
    parser.add_argument("-l", "--selector", default=None, help="label selector, e.g. app=web,tier!=db")
    if name:
        parser.add_argument("--name", default=None, help="only objects with this name")
    if limit:
        parser.add_argument(
            "--limit", type=argtypes.positive_int, default=None, metavar="N", help="at most this many rows (1 or more)"
        )
    if kind:
        parser.add_argument("--kind", default=None, help="only this kind (collector name), e.g. pods")


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


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="view", metavar="VIEW", required=True)
    clusters = sub.add_parser("clusters", help="every cluster: status and why, freshness, edge, last sync, counts")
    _common(clusters)
    _at(clusters)
    clusters.set_defaults(run=run_clusters)
    for view in VIEWS[1:]:
        p = sub.add_parser(
            view, aliases=SHORT_NAMES.get(view, ()),
            help=f"{view} across clusters" if view != "resources" else "any kind, raw data",
        )  # fmt: skip
        p.add_argument("object_name", nargs="?", default=None, metavar="NAME", help="only objects with this name")
        _common(p)
        _filters(p, kind=view == "resources")
        _at(p)
        # Invoked by a short name, the view is still the full one.
        p.set_defaults(run=run_resources, kind=None if view == "resources" else view, view=view)
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
    service.add_argument("--namespace", "-n", default="default", help="the service's namespace (default: default)")
    _common(service)
    service.set_defaults(run=run_service)


def _token(args: argparse.Namespace) -> str | None:
    """The reader's token: ``--token``, else ``--token-file``'s content, else ``$NAVIGATOR_TOKEN``."""
    if args.token is not None:
        return str(args.token)
    if args.token_file is not None:
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
    try:
        parse_selector(text)
    except SelectorError as exc:
        raise NavigatorError(f"-l: {exc}") from None


def _as_of(at: datetime | None) -> str | None:
    return f"as of {rfc3339(at)}" if at is not None else None


@_exit_1_when_unreachable
def run_clusters(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    at = _time("--at", args.at, now)
    with _client(args) as client:
        rows = client.clusters(args.cluster, at=at)
    asked = at or datetime.now(UTC)
    for r in rows:  # by this host's clock, at the time asked about
        r["age_seconds"] = copy_age(r["fresh_as_of"], asked)
    if args.output == "json":
        print_json(rows)
        return 0
    kinds = sorted({k for r in rows for k in r["counts"]})
    now = at or now
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
        keep=("cluster", "status", "freshness", "lag"),
    )  # fmt: skip
    return 0


def _reason(row: dict[str, Any]) -> str:
    """Why the status is not HEALTHY, which names the errors; from an older manager (no reason), the errors."""
    if row.get("status_reason"):
        return str(row["status_reason"])
    return "; ".join(f"{e['kind']}: {e['message']}" + (" (cached)" if e["cached"] else "") for e in row["errors"])


def _ports(ports: Iterable[dict[str, Any]] | None) -> str:
    out = []
    for p in ports or []:
        target = p.get("target_port")
        text = f"{p.get('port')}/{p.get('protocol') or 'TCP'}"
        if target not in (None, "", p.get("port")):
            text += f"→{target}"
        out.append(text)
    return ",".join(out)


def _ready_count(endpoints: Iterable[dict[str, Any]] | None) -> str:
    eps = list(endpoints or [])
    return f"{sum(1 for e in eps if e.get('ready'))}/{len(eps)}"


def _yes(value: object) -> str:
    return "" if value is None else ("yes" if value else "no")


def _labels(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


TABLES: dict[str, tuple[list[str], Callable[[dict[str, Any]], tuple[Any, ...]]]] = {
    "pods": (
        ["cluster", "namespace", "name", "phase", "ready", "ip", "node"],
        lambda r: (r["cluster"], r["namespace"], r["name"], r["phase"], _yes(r["ready"]), r["pod_ip"], r["node_name"]),
    ),
    "services": (
        ["cluster", "namespace", "name", "type", "cluster-ip", "ports"],
        lambda r: (r["cluster"], r["namespace"], r["name"], r["type"], r["cluster_ip"], _ports(r["ports"])),
    ),
    "endpointslices": (
        ["cluster", "namespace", "name", "service", "type", "ready", "ports"],
        lambda r: (
            r["cluster"],
            r["namespace"],
            r["name"],
            r["service"],
            r["address_type"],
            _ready_count(r["endpoints"]),
            _ports(r["ports"]),
        ),
    ),
    "resources": (
        ["cluster", "kind", "namespace", "name", "version", "labels"],
        lambda r: (r["cluster"], r["kind"], r["namespace"], r["name"], r["resource_version"], _labels(r["labels"])),
    ),
}


@_exit_1_when_unreachable
def run_resources(args: argparse.Namespace) -> int:
    _check_selector(args.selector)
    at = _time("--at", args.at, datetime.now(UTC))
    view = args.view
    if args.object_name is not None:
        if args.name is not None and args.name != args.object_name:
            raise NavigatorError(f"NAME {args.object_name!r} and --name {args.name!r} differ: give one")
        args.name = args.object_name
    with _client(args) as client:
        pages = client.resource_pages(
            kind=args.kind,
            cluster=args.cluster,
            namespace=args.namespace,
            selector=args.selector,
            name=args.name,
            limit=args.limit,
            at=at,
        )
        if args.output == "json":  # streamed: each page printed as it arrives
            print_json_blocks(json_rows(page, view) for page in pages)
            return 0
        rows = [row for page in pages for row in view_rows(page, view)]
    if not rows:  # as kubectl: a note on stderr, nothing on stdout, success
        print(f"No resources found{f' in {args.namespace} namespace' if args.namespace else ''}.", file=sys.stderr)
        return 0
    columns, row = TABLES[view]
    print_table(columns, [row(r) for r in rows], title=_as_of(at))
    return 0


def _second(stamp: str | None) -> str:
    """An RFC 3339 time to the second, for tables."""
    if not stamp:
        return ""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).strftime("%Y-%m-%dT%H:%M:%SZ")


@_exit_1_when_unreachable
def run_changes(args: argparse.Namespace) -> int:
    _check_selector(args.selector)
    now = datetime.now(UTC)
    since, until = _time("--since", args.since, now), _time("--until", args.until, now)
    if since is not None and until is not None and since > until:
        raise NavigatorError(f"--since {rfc3339(since)} is after --until {rfc3339(until)}")
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
        if args.output == "json":  # streamed
            print_json(changes)
            return 0
        rows = list(changes)
    print_table(
        ["time", "type", "cluster", "kind", "namespace", "name", "rv", "fields"],
        [
            (_second(r["applied_at"]), r["type"], r["cluster"], r["kind"], r["namespace"], r["name"],
             r["resource_version"], ",".join(r["changed_fields"]))
            for r in rows
        ],
    )  # fmt: skip
    return 0


@_exit_1_when_unreachable
def run_diff(args: argparse.Namespace) -> int:
    _check_selector(args.selector)
    if args.from_time is None:
        raise NavigatorError("--from is required: the earlier of the two times to compare")
    now = datetime.now(UTC)
    start, end = _time("--from", args.from_time, now), _time("--to", args.to_time, now)
    assert start is not None
    if end is not None and start > end:
        raise NavigatorError(f"--from {rfc3339(start)} is after --to {rfc3339(end)}")
    with _client(args) as client:
        entries = client.diff(
            start, end, cluster=args.cluster, kind=args.kind, namespace=args.namespace, selector=args.selector
        )
        if args.output == "json":  # streamed
            print_json(entries)
            return 0
        rows = list(entries)

    def version(r: dict[str, Any]) -> str:
        old, new = r["old_resource_version"], r["resource_version"]
        return f"{old}→{new}" if r["type"] == "CHANGED" and old != new else new

    print_table(
        ["type", "cluster", "kind", "namespace", "name", "rv", "fields"],
        [(r["type"], r["cluster"], r["kind"], r["namespace"], r["name"], version(r), ",".join(r["changed_fields"]))
         for r in rows],
        title=f"from {rfc3339(start)} to {rfc3339(end) if end is not None else 'now'}",
    )  # fmt: skip
    return 0


@_exit_1_when_unreachable
def run_service(args: argparse.Namespace) -> int:
    with _client(args) as client:
        views = service_view(client, args.service_name, args.namespace, cluster=args.cluster)
    if not views:
        raise NavigatorError(f"service {args.namespace}/{args.service_name} was not found in any cluster")
    if args.output == "json":
        print_json(views)
        return 0
    rows = []
    for v in views:
        head = (v["cluster"], v["type"], v["cluster_ip"], _ports(v["ports"]))
        if not v["endpoints"]:
            rows.append((*head, "-", "", "", "", ""))
        for i, e in enumerate(v["endpoints"]):
            shown = head if i == 0 else ("", "", "", "")
            rows.append(
                (*shown, ",".join(e["addresses"]), e["pod"] or "", e["node_name"] or "", _yes(e["ready"]),
                 _yes(e["pod_ready"]))
            )  # fmt: skip
    print_table(
        ["cluster", "type", "cluster-ip", "ports", "endpoint", "pod", "node", "ready", "pod ready"],
        rows,
        title=f"service {args.namespace}/{args.service_name}",
    )
    return 0
