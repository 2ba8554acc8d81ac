"""Run a manager and one edge per kubeconfig context against real clusters."""

from __future__ import annotations

import argparse
from pathlib import Path

from navigator.cli.demo import add_fleet_arguments, make_console, stop_on_sigterm


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected context names separated by commas, e.g. prod,staging")
    return names


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", type=Path, default=None, metavar="PATH",
                        help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)")
    parser.add_argument("--contexts", type=_names, default=None, metavar="A,B",
                        help="contexts to watch, comma-separated (default: every context)")
    add_fleet_arguments(parser, default_interval=30.0)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from navigator.local.runner import LocalOptions, run_local

    stop_on_sigterm()
    options = LocalOptions(
        kubeconfig=args.kubeconfig,
        contexts=args.contexts,
        duration=args.duration,
        port=args.port,
        metrics_port=args.metrics_port,
        interval=args.interval,
        directory=args.dir,
        dashboard=not args.no_dashboard,
    )
    return run_local(options, make_console())
