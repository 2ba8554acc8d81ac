"""Run an edge: collect one cluster and stream it to the manager.

Exit codes: 0 clean shutdown (or ``--once`` collected everything), 1 runtime
failure (``--once``: nothing could be collected), 2 configuration or usage
error, 3 ``--once`` collected only part of the kinds (see the summary), 4 the
manager rejected the edge ``manager.max_rejections`` times in a row (wrong
token, unknown cluster, unsupported protocol; the reason is logged).
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from navigator.config import load_edge_config
from navigator.edge.app import run_edge
from navigator.edge.once import run_once
from navigator.log import configure_logging


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", type=Path, required=True, help="edge YAML file")
    parser.add_argument(
        "--once",
        action="store_true",
        help="collect once, print a summary (objects, bytes, duration, errors) and exit; no manager needed",
    )
    parser.add_argument(
        "-o", "--output", choices=["table", "json"], default="table", help="--once summary format"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_edge_config(args.config)
    configure_logging(args.log_level or config.logging.level, args.log_format or config.logging.format)
    if args.once:
        return asyncio.run(run_once(config, output=args.output))
    return asyncio.run(run_edge(config))
