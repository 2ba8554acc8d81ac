"""Printing results: ``-o json`` is one JSON array on stdout, ``-o table`` a rich table."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table


def print_json(rows: Sequence[Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(list(rows), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    sys.stdout.buffer.write(b"\n")
    sys.stdout.flush()


def print_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    table = Table(title=title, header_style="bold", box=None, pad_edge=False)
    for column in columns:
        table.add_column(column.upper())
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console.width = 100_000  # piped output keeps whole values instead of truncating to 80 columns
    console.print(table)


def add_output_argument(parser: Any) -> None:
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")
