"""Show the configuration schema of the edge or the manager."""

from __future__ import annotations

import argparse
import sys

import orjson

from navigator.config import EdgeConfig, ManagerConfig


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    schema = sub.add_parser("schema", help="print the JSON schema of a configuration file")
    schema.add_argument("which", choices=["edge", "manager"])
    schema.set_defaults(run=run_schema)


def run_schema(args: argparse.Namespace) -> int:
    model = EdgeConfig if args.which == "edge" else ManagerConfig
    sys.stdout.buffer.write(orjson.dumps(model.model_json_schema(), option=orjson.OPT_INDENT_2) + b"\n")
    return 0
