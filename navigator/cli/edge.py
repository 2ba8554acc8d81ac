"""Run an edge: collect one cluster and stream it to the manager."""

from __future__ import annotations

import argparse

from navigator.errors import NavigatorError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise NavigatorError("'navigator edge' is not implemented yet")
