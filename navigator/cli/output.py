"""Printing results: tables as kubectl prints them, one JSON array, YAML, names or a JSONPath template.

Tables are plain text, written as the rows arrive: the column widths come from
the first page (as kubectl's do), each later page is written as it comes, a
value wider than its column pushes the rest of its line along (it is never cut),
two spaces between columns, no trailing spaces. No third-party rendering: a
20,000-row table costs about what its JSON does.

The JSON array is written as the rows arrive, a page at a time, one row per line::

    [
    {"cluster":"east","namespace":"shop","name":"web-1",...},
    {"cluster":"east","namespace":"shop","name":"web-2",...}
    ]

so the first rows show while later ones are still on their way and memory
does not grow with the result; an empty result is ``[]``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from functools import partial
from itertools import islice
from typing import Any, TextIO

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


class TableWriter:
    """A plain-text table written page by page: widths from the first page, each page flushed as it comes."""

    def __init__(
        self, headers: Sequence[str], headers_shown: bool = True, title: str | None = None, out: TextIO | None = None
    ) -> None:
        self.headers = [h.upper() for h in headers]
        self.headers_shown = headers_shown
        self.title = title
        self.out = out
        self.widths: list[int] | None = None
        self._format: Callable[..., str] = "".format
        self.rows = 0

    def write(self, rows: Sequence[Sequence[str]]) -> None:
        """One page of rows, each as many cells as there are headers; the first page sets the widths."""
        if not rows:
            return
        out = self.out or sys.stdout
        lines: list[str] = []
        if self.widths is None:
            widths = [len(h) if self.headers_shown else 1 for h in self.headers]
            for row in rows:
                widths = [w if w >= len(c) else len(c) for w, c in zip(widths, row, strict=True)]
            self.widths = widths
            # One format per table: a wider cell is padded to nothing and pushes the rest of its line along.
            self._format = "  ".join([*(f"{{:<{w}}}" for w in widths[:-1]), "{}"]).format
            if self.title:
                lines.append(self.title + "\n")
            if self.headers_shown:
                lines.append(self._format(*self.headers).rstrip() + "\n")
        line = self._format
        lines += [line(*row).rstrip() + "\n" for row in rows]
        out.write("".join(lines))
        out.flush()
        self.rows += len(rows)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    title: str | None = None,
    keep: Collection[str] = (),
    headers: bool = True,
) -> None:
    """A whole table on stdout (``None`` cells empty). Every column is kept whole; ``keep`` is accepted for
    callers written for the older renderer, which could squeeze columns not named in it."""
    writer = TableWriter(columns, headers, title)
    writer.write([["" if v is None else str(v) for v in row] for row in rows])


# -- -o: the formats ------------------------------------------------------------------

class OutputError(ValueError):
    """A bad ``-o`` value, JSONPath template or ``--sort-by`` field; the message says what is wrong."""


def output_format(formats: Sequence[str], templates: bool) -> Callable[[str], str]:
    """The ``-o`` argument type: one of ``formats``, or ``jsonpath=TEMPLATE`` when ``templates``."""

    def parse(text: str) -> str:
        value = text.strip()
        if value in formats:
            return value
        if templates and value.startswith("jsonpath="):
            return value  # the template is read when the command runs: a bad one is one error line
        more = " or jsonpath=TEMPLATE" if templates else ""
        raise argparse.ArgumentTypeError(f"unknown output format {text!r}: use {', '.join(formats)}{more}")

    return parse


def add_output_argument(parser: Any, formats: Sequence[str] = ("table", "json")) -> None:
    templates = "jsonpath" in formats
    names = [f for f in formats if f != "jsonpath"]
    shown = "|".join(names) + ("|jsonpath=TEMPLATE" if templates else "")
    parser.add_argument(
        "-o", "--output", type=output_format(names, templates), default="table", metavar="FORMAT",
        help=f"output format: {shown} (default table)",
    )  # fmt: skip


def print_yaml(rows: Iterable[Any]) -> None:
    """One YAML list of ``rows`` on stdout, written ``BATCH`` rows at a time as they come (``[]`` when empty)."""
    import yaml  # only this format needs it

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    out = sys.stdout
    it = iter(rows)
    written = False
    for batch in iter(lambda: list(islice(it, BATCH)), []):
        out.write(yaml.dump(batch, Dumper=dumper, sort_keys=False, allow_unicode=True, default_flow_style=False))
        out.flush()
        written = True
    if not written:
        out.write("[]\n")
        out.flush()


def print_lines(lines: Iterable[str]) -> None:
    """One line per item (``-o name``), flushed ``BATCH`` lines at a time."""
    out = sys.stdout
    it = iter(lines)
    for batch in iter(lambda: list(islice(it, BATCH)), []):
        out.write("".join(line + "\n" for line in batch))
        out.flush()


class JsonPathTemplate:
    """kubectl's ``-o jsonpath=TEMPLATE``: text with ``{expression}``s, ``{range ...}...{end}`` and ``{"\\n"}``.

    The template is applied to ``{"kind": "List", "items": [rows]}``, as kubectl
    applies it to a list, so ``{.items[*].name}`` and
    ``{range .items[*]}{.cluster}{"\\t"}{.name}{"\\n"}{end}`` work as there; several
    results of one expression are joined by spaces, objects and lists printed as JSON,
    a missing field prints nothing. Expressions are JSONPath (filters included:
    ``{.items[?(@.phase=="Running")].name}``).
    """

    def __init__(self, template: str) -> None:
        self.template = template
        self.parts = self._block(iter(self._tokens(template)), top=True)

    # A part: ("text", str) | ("expr", compiled) | ("range", compiled, [parts])
    def _tokens(self, template: str) -> Iterator[tuple[str, str]]:
        i, text = 0, []
        while i < len(template):
            ch = template[i]
            if ch != "{":
                if ch == "}":
                    raise OutputError(f"-o jsonpath: an unmatched }} at character {i + 1} of {template!r}")
                text.append(ch)
                i += 1
                continue
            if text:
                yield "text", "".join(text)
                text = []
            j, quote = i + 1, ""
            while j < len(template) and (quote or template[j] != "}"):
                if quote and template[j] == "\\":
                    j += 1
                elif template[j] in "\"'":
                    quote = "" if quote == template[j] else (quote or template[j])
                j += 1
            if j >= len(template):
                raise OutputError(f"-o jsonpath: an unclosed {{ at character {i + 1} of {template!r}")
            yield "action", template[i + 1 : j].strip()
            i = j + 1
        if text:
            yield "text", "".join(text)

    def _block(self, tokens: Iterator[tuple[str, str]], top: bool) -> list[tuple[Any, ...]]:
        parts: list[tuple[Any, ...]] = []
        for kind, value in tokens:
            if kind == "text":
                parts.append(("text", value))
            elif value == "end":
                if top:
                    raise OutputError(f"-o jsonpath: {{end}} without {{range ...}} in {self.template!r}")
                return parts
            elif value.startswith("range "):
                parts.append(("range", self._compile(value.removeprefix("range ").strip()), self._block(tokens, False)))
            elif len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                parts.append(("text", _unescape(value[1:-1])))
            else:
                parts.append(("expr", self._compile(value)))
        if not top:
            raise OutputError(f"-o jsonpath: {{range ...}} without {{end}} in {self.template!r}")
        return parts

    def _compile(self, expression: str) -> Any:
        from jsonpath_ng.ext import parse  # only this format needs it

        text = expression
        if text in ("", "@", "$"):
            text = "$"
        elif text.startswith("@"):
            text = "$" + text[1:]
        elif text.startswith((".", "[")):
            text = "$" + text
        try:
            return parse(text)
        except Exception as exc:  # the library raises several types, all of them saying where
            raise OutputError(f"-o jsonpath: cannot parse {{{expression}}}: {exc}") from None

    def render(self, root: Any) -> str:
        out: list[str] = []
        self._render(self.parts, root, out)
        return "".join(out)

    def _render(self, parts: Sequence[tuple[Any, ...]], data: Any, out: list[str]) -> None:
        for part in parts:
            if part[0] == "text":
                out.append(part[1])
            elif part[0] == "expr":
                out.append(" ".join(_jsonpath_text(m.value) for m in part[1].find(data)))
            else:
                matches = [m.value for m in part[1].find(data)]
                # One list (``{range .items}``) is ranged over, as kubectl does.
                values = matches[0] if len(matches) == 1 and isinstance(matches[0], list) else matches
                for value in values:
                    self._render(part[2], value, out)


def _unescape(text: str) -> str:
    return text.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r").replace('\\"', '"').replace(
        "\\\\", "\\"
    )


def _jsonpath_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def print_jsonpath(template: JsonPathTemplate, rows: Iterable[Any]) -> None:
    sys.stdout.write(template.render({"kind": "List", "items": list(rows)}))
    sys.stdout.flush()


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

