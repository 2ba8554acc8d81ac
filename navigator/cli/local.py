"""Run a manager and one edge per kubeconfig context against real clusters."""

from __future__ import annotations

import argparse

from navigator.errors import NavigatorError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    raise NavigatorError("'navigator local' is not implemented yet")
