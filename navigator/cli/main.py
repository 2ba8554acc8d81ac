"""The ``navigator`` command: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from navigator import __version__
from navigator.cli import config_cmd, demo, edge, kubesim, local, manager, plugins, query, watch
from navigator.errors import NavigatorError
from navigator.exit_codes import EXIT_USAGE
from navigator.log import configure_logging
from navigator.processes import PARENT_ENV, die_with_parent

COMMANDS = {
    "manager": manager,
    "edge": edge,
    "demo": demo,
    "local": local,
    "kubesim": kubesim,
    "query": query,
    "watch": watch,
    "plugins": plugins,
    "config": config_cmd,
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=None, help="TRACE, DEBUG, INFO (default), WARNING, ERROR")
    common.add_argument("--log-format", choices=["human", "json"], default=None, help="log line format")
    parser = argparse.ArgumentParser(
        prog="navigator", description="One live, queryable, persistent view of all your Kubernetes clusters."
    )
    parser.add_argument("--version", action="version", version=f"navigator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        doc = (module.__doc__ or "").strip().splitlines()[0]
        module.configure(sub.add_parser(name, help=doc, description=doc, parents=[common]))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if PARENT_ENV in os.environ:  # started by navigator.processes (the demo, tests)
        die_with_parent()
    args = build_parser().parse_args(argv)
    configure_logging(args.log_level or "INFO", args.log_format or "human")
    try:
        code: int = args.run(args)
    except NavigatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
