"""Print a shell completion script (bash or zsh) for every command and option.

The script is generated from the full parser, so it can never fall behind the
commands it completes; options that take a path complete file names. Install
it once (docs/cli.md), e.g. ``navigator completion bash > ~/.local/share/bash-completion/completions/navigator``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

#: Shells shtab writes scripts for that we document and test.
SHELLS = ("bash", "zsh")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS, help="the shell to complete in")
    parser.set_defaults(run=run)


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield from _parsers(child)


def _complete_paths(parser: argparse.ArgumentParser) -> None:
    """Options typed ``Path`` (``--config``, ``--kubeconfig``, ``--load``, ...) complete file names."""
    import shtab

    for each in _parsers(parser):
        for action in each._actions:
            if action.type is Path and not hasattr(action, "complete"):
                action.complete = shtab.FILE  # type: ignore[attr-defined]


def script(shell: str) -> str:
    """The completion script for ``shell``, from the parser with every command's options."""
    import shtab

    from navigator.cli.main import build_parser

    parser = build_parser()
    _complete_paths(parser)
    return str(shtab.complete(parser, shell=shell))


def run(args: argparse.Namespace) -> int:
    text = script(args.shell)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
