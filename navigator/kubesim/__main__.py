"""``python -m navigator.kubesim``: the same CLI as ``navigator kubesim``."""

from __future__ import annotations

import argparse
import sys

from .cli import configure_parser, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m navigator.kubesim",
                                     description="Serve a simulated Kubernetes API server.")
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
