"""Run simulated clusters, a manager and edges in one command, with live status."""

from __future__ import annotations

import argparse
import signal
from pathlib import Path
from types import FrameType

from rich.console import Console

from navigator.cli import argtypes


def add_fleet_arguments(parser: argparse.ArgumentParser, default_interval: float) -> None:
    """Options ``navigator demo`` and ``navigator local`` share."""
    parser.add_argument("--port", type=argtypes.port, default=None, metavar="P",
                        help="manager port (default 50051, or a free port if that is taken; 0: any free port)")
    parser.add_argument("--metrics-port", type=argtypes.port, default=None, metavar="P",
                        help="Prometheus metrics port of the manager (default: a free port)")
    parser.add_argument("--interval", type=argtypes.duration, default=default_interval, metavar="S",
                        help=f"edge sync interval, e.g. 5s (default {default_interval:g}s)")
    parser.add_argument("--duration", type=argtypes.duration, default=None, metavar="S",
                        help="stop after this many seconds, print a final table, exit 0 only if all clusters "
                        "were HEALTHY (default: run until Ctrl-C)")
    parser.add_argument("--dir", type=Path, default=None, metavar="PATH",
                        help="keep configs, logs and the SQLite database here (default: a temporary directory)")
    parser.add_argument("--no-dashboard", action="store_true",
                        help="print status lines instead of the live view (also when stdout is not a terminal)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clusters", type=argtypes.positive_int, default=3, metavar="N",
                        help="simulated clusters (default 3)")
    parser.add_argument("--pods", type=argtypes.count, default=200, metavar="N", help="pods per cluster (default 200)")
    parser.add_argument("--services", type=argtypes.count, default=None, metavar="N",
                        help="services per cluster (default: one per 10 pods)")
    parser.add_argument("--churn", type=argtypes.rate, default=0.0, metavar="R",
                        help="pod changes per second per cluster: restarts, readiness, scaling (default 0)")
    add_fleet_arguments(parser, default_interval=5.0)
    parser.set_defaults(run=run)


def make_console() -> Console:
    """A pipe or CI log gets full-width lines, not rich's 80-column default."""
    console = Console()
    return console if console.is_terminal else Console(width=200, soft_wrap=True)


def stop_on_sigterm() -> None:
    """SIGTERM stops the demo like Ctrl-C does: children are stopped, nothing is left behind."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    from navigator.demo.runner import DemoOptions, run_demo

    stop_on_sigterm()
    options = DemoOptions(
        clusters=args.clusters,
        pods=args.pods,
        services=args.services,
        churn=args.churn,
        duration=args.duration,
        port=args.port,
        metrics_port=args.metrics_port,
        interval=args.interval,
        directory=args.dir,
        dashboard=not args.no_dashboard,
    )
    return run_demo(options, make_console())
