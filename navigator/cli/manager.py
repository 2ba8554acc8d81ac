"""Run the central manager: sync service, storage and queries."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from navigator.config import load_manager_config
from navigator.config.edge import check_address
from navigator.errors import ConfigError
from navigator.log import configure_logging
from navigator.manager.app import run_manager


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", type=Path, default=None, help="manager YAML file (default: built-in defaults)")
    parser.add_argument("--listen", default=None, help="HOST:PORT to serve on, overriding the file's listen")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = load_manager_config(args.config)
    if args.listen is not None:
        try:
            config = config.model_copy(update={"listen": check_address(args.listen)})
        except ValueError as exc:
            raise ConfigError(f"--listen: {exc}") from None
    configure_logging(args.log_level or config.logging.level, args.log_format or config.logging.format)
    return asyncio.run(run_manager(config))
