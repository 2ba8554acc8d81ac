"""Printing results: ``-o json`` is one JSON array on stdout, ``-o table`` a rich table.

The array is written as the rows arrive, a page at a time, one row per line::

    [
    {"cluster":"east","namespace":"shop","name":"web-1",...},
    {"cluster":"east","namespace":"shop","name":"web-2",...}
    ]

so the first rows show while later ones are still on their way and memory
does not grow with the result; an empty result is ``[]``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Collection, Iterable, Sequence
from functools import partial
from itertools import islice
from typing import Any

import orjson

_dumps = partial(orjson.dumps, option=orjson.OPT_NON_STR_KEYS)

#: Rows ``print_json`` takes from its iterable before writing them.
BATCH = 500


def json_lines(rows: Iterable[Any]) -> bytearray:
    """``rows`` as JSON text, one compact object per row, joined by ``,\\n`` (a block for ``print_json_blocks``)."""
    out = bytearray()
    for row in rows:
        out += _dumps(row)  # appended and dropped at once: keeping many small results is much slower
        out += b",\n"
    del out[-2:]
    return out


def print_json(rows: Iterable[Any]) -> None:
    """One JSON array of ``rows`` on stdout, written ``BATCH`` rows at a time as the iterable gives them."""
    it = iter(rows)
    print_json_blocks(json_lines(batch) for batch in iter(lambda: list(islice(it, BATCH)), []))


def print_json_blocks(blocks: Iterable[bytes | bytearray]) -> None:
    """One JSON array on stdout from blocks of rows (JSON objects joined by ``,\\n``), each written as it comes.

    Nothing is written before the first row (or the end): a query refused at once
    leaves stdout empty. If ``blocks`` raises part-way, the rows so far stay written,
    the line is ended, and the exception goes on to the caller: the array is left
    open (not valid JSON) and the command exits non-zero.
    """
    out = sys.stdout.buffer
    opened = False
    try:
        for block in blocks:
            if not block:
                continue
            out.write(b",\n" if opened else b"[\n")
            out.write(block)
            out.flush()
            opened = True
    except Exception as exc:
        if opened and not isinstance(exc, OSError):
            with contextlib.suppress(OSError):
                out.write(b"\n")
                out.flush()
        raise
    out.write(b"\n]\n" if opened else b"[]\n")
    out.flush()


def print_table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None, keep: Collection[str] = ()
) -> None:
    """A table on stdout; in a narrow terminal the columns named in ``keep`` are never squeezed or cut."""
    from rich.console import Console  # only tables need rich: `-o json` starts faster without it
    from rich.table import Table

    table = Table(title=title, header_style="bold", box=None, pad_edge=False)
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    for i, column in enumerate(columns):
        if column in keep:
            widest = max((len(row[i]) for row in cells), default=0)
            table.add_column(column.upper(), no_wrap=True, min_width=max(widest, len(column)))
        else:
            table.add_column(column.upper())
    for row in cells:
        table.add_row(*row)
    console = Console(soft_wrap=True)
    if not console.is_terminal:
        console.width = 100_000  # piped output keeps whole values instead of truncating to 80 columns
    console.print(table)


def short_duration(seconds: float | None) -> str | None:
    """A short duration for a table cell: 45ms, 0.2s, 12s, 3m, 2h, 5d (a negative one: clock skew)."""
    if seconds is None:
        return None
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    if seconds < 0.1:
        return f"{sign}{seconds * 1000:.0f}ms"
    if seconds < 10:
        return f"{sign}{seconds:.1f}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{sign}{int(seconds // size)}{unit}"
    return f"{sign}{int(seconds)}s"


def add_output_argument(parser: Any) -> None:
    parser.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")
