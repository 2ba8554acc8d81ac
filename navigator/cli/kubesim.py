"""Serve a simulated Kubernetes API server (for tests, demos and plugin authors)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    from navigator.kubesim.cli import configure_parser

    configure_parser(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from navigator.kubesim.cli import run as run_kubesim

    return run_kubesim(args)
