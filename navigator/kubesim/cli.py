"""``navigator kubesim``: serve a simulated cluster until SIGTERM/SIGINT.

Prints exactly one line, ``listening on <url>``, so scripts can wait for it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from navigator.cli import argtypes

from .loader import LoadError


def _fault(text: str) -> tuple[str, int]:
    kind, sep, status = text.partition("=")
    if not sep or not kind.strip() or not status.strip().isdigit() or not 400 <= int(status) <= 599:
        raise argparse.ArgumentTypeError(
            f"expected KIND=STATUS with KIND a plural resource (e.g. pods) and STATUS an HTTP error code "
            f"400-599, got {text!r}"
        )
    return kind.strip(), int(status)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", required=True, metavar="PATH", help="where to write the kubeconfig")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=argtypes.port, default=0, help="port to listen on (default 0: a free port)")
    parser.add_argument("--pods", type=argtypes.count, default=0, metavar="N", help="generated pods")
    parser.add_argument("--services", type=argtypes.count, default=0, metavar="N", help="generated services")
    parser.add_argument("--namespaces", type=argtypes.count, default=1, metavar="N",
                        help="generated workload namespaces, besides the 4 system ones (default 1)")
    parser.add_argument("--nodes", type=argtypes.count, default=None, metavar="N",
                        help="generated nodes (default: one per 60 pods)")
    parser.add_argument("--seed", type=argtypes.count, default=0, metavar="N", help="generator seed (default 0)")
    parser.add_argument("--churn", type=argtypes.rate, default=0.0, metavar="PER_SECOND",
                        help="pod mutations per second (restarts, readiness, scaling)")
    parser.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN'")
    parser.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA (put in the kubeconfig)")
    parser.add_argument("--load", action="append", default=[], metavar="FILE",
                        help="JSON/YAML objects to store as given (repeatable)")
    parser.add_argument("--fault", action="append", type=_fault, default=[], metavar="KIND=STATUS",
                        help="fail every request for a resource, e.g. pods=500 or services=429 (repeatable)")
    parser.add_argument("--name", default="sim", help="cluster name, also the default context name")
    parser.add_argument("--user", default=None, help="kubeconfig user name (default NAME-user)")
    parser.add_argument("--context", default=None, help="kubeconfig context name (default NAME)")
    parser.add_argument("--history-limit", type=argtypes.count, default=20000, metavar="N",
                        help="watch events kept; older resourceVersions get 410 Gone (default 20000)")
    parser.add_argument("--bookmark-interval", type=argtypes.rate, default=10.0, metavar="SECONDS",
                        help="seconds between watch bookmarks (default 10)")


def run(args: argparse.Namespace) -> int:
    from .sim import KubeSim  # keeps `navigator --help` fast

    def fail(msg: str) -> int:
        print(f"kubesim: error: {msg}", file=sys.stderr)
        return 2

    try:
        sim = KubeSim(
            args.pods, args.services, args.namespaces, nodes=args.nodes, seed=args.seed, token=args.token,
            tls=args.tls, name=args.name, host=args.host, port=args.port, kubeconfig_path=args.kubeconfig,
            user=args.user, context=args.context, faults=dict(args.fault), history_limit=args.history_limit,
            bookmark_interval=args.bookmark_interval,
        )
        for path in args.load:
            try:
                sim.load(path)
            except LoadError as exc:
                return fail(f"argument --load: {exc}")
    except ValueError as exc:
        return fail(str(exc))
    try:
        sim.start()
    except OSError as exc:
        return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    stop = threading.Event()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        print(f"listening on {sim.url}", flush=True)
        if args.churn:
            sim.start_churn(args.churn)
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
