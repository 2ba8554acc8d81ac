"""Run simulated clusters, a manager and edges in one command, with live status."""

from __future__ import annotations

import argparse

from navigator.errors import NavigatorError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise NavigatorError("'navigator demo' is not implemented yet")
