"""The ``navigator`` command: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import os
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

from navigator import __version__
from navigator.errors import NavigatorError
from navigator.exit_codes import EXIT_USAGE
from navigator.log import configure_logging
from navigator.processes import PARENT_ENV, die_with_parent

#: Each sub-command's module. Only the one that runs is imported (``navigator --help`` imports none):
#: together they pull in the kubernetes client, gRPC and pydantic, about a second of start-up.
COMMANDS = {
    "manager": "navigator.cli.manager",
    "edge": "navigator.cli.edge",
    "demo": "navigator.cli.demo",
    "local": "navigator.cli.local",
    "kubesim": "navigator.cli.kubesim",
    "query": "navigator.cli.query",
    "watch": "navigator.cli.watch",
    "plugins": "navigator.cli.plugins",
    "config": "navigator.cli.config_cmd",
    "version": "navigator.cli.version",
    "completion": "navigator.cli.completion",
}


def _summary(module: str) -> str:
    """The first line of ``module``'s docstring, read from its source without importing it."""
    spec = importlib.util.find_spec(module)
    # The file itself: not every loader on the import path can give the source (pytest's cannot).
    origin = spec.origin if spec is not None else None
    source = Path(origin).read_text(encoding="utf-8") if origin is not None and origin.endswith(".py") else ""
    doc = ast.get_docstring(ast.parse(source)) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def build_parser(configured: Collection[str] | None = None) -> argparse.ArgumentParser:
    """Every sub-command is listed; only those in ``configured`` (None: all) get their options."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=None, help="TRACE, DEBUG, INFO (default), WARNING, ERROR")
    common.add_argument("--log-format", choices=["human", "json"], default=None, help="log line format")
    parser = argparse.ArgumentParser(
        prog="navigator", description="One live, queryable, persistent view of all your Kubernetes clusters."
    )
    parser.add_argument("--version", action="version", version=f"navigator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        # Another command's one-line summary shows only in the top-level help: not read when a command runs.
        doc = _summary(module) if not configured or name in configured else None
        command = sub.add_parser(name, help=doc, description=doc, parents=[common])
        if configured is None or name in configured:
            importlib.import_module(module).configure(command)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The sub-command ``argv`` names: the first word not an option (the top level's take no values)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _name_overrides(message: str, command: str | None) -> str:
    """A plugin's error about a key an environment variable set names the variable (imported only on error)."""
    from navigator.config.loading import PREFIXES, name_overrides

    prefix = PREFIXES.get(command or "")
    return name_overrides(message, prefix) if prefix is not None else message


def main(argv: Sequence[str] | None = None) -> int:
    if PARENT_ENV in os.environ:  # started by navigator.processes (the demo, tests)
        die_with_parent()
    words = sys.argv[1:] if argv is None else list(argv)
    command = _command(words)
    args = build_parser([command] if command in COMMANDS else ()).parse_args(words)
    configure_logging(args.log_level or "INFO", args.log_format or "human")
    try:
        code: int = args.run(args)
    except NavigatorError as exc:
        print(f"error: {_name_overrides(str(exc), command)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
