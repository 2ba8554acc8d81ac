"""Griffe extension: let reST-flavoured docstrings render as Markdown in the API pages.

The source keeps the conventions Python readers know (``:class:`~x.Y``` roles,
``Example::`` literal blocks, ``#:`` attribute comments); mkdocstrings speaks
Markdown. Translating here keeps both audiences served without editing the code.
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|obj|data|exc|const):`(~?)([\w.]+)(?:\(\))?`")


def _role(match: re.Match[str]) -> str:
    short, target = match.group(1), match.group(2)
    title = target.rsplit(".", 1)[-1] if short else target
    return f"[`{title}`][{target}]"


def _literal_blocks(text: str) -> str:
    """``para::`` followed by an indented block becomes ``para:`` and a fenced Python block."""
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::") and not line.lstrip().startswith(("```", ">>>")):
            j = i + 1
            while j < len(lines) and not lines[j].strip():
                j += 1
            block_start = j
            while j < len(lines) and (not lines[j].strip() or lines[j].startswith((" ", "\t"))):
                j += 1
            if block_start < j:
                head = line.rstrip()[:-1]
                if head.strip() != ":":
                    out.append(head)
                code = textwrap.dedent("\n".join(lines[block_start:j])).strip("\n")
                out.extend(["", "```python", *code.splitlines(), "```", ""])
                i = j
                continue
        out.append(line)
        i += 1
    return "\n".join(out)


def to_markdown(text: str) -> str:
    return ROLE.sub(_role, _literal_blocks(text))


def _comment_doc(lines: list[str], lineno: int) -> str | None:
    """The ``#:`` comment lines right above line ``lineno`` (1-based), Sphinx-autodoc style."""
    found: list[str] = []
    index = lineno - 2
    while index >= 0 and lines[index].strip().startswith("#:"):
        found.append(lines[index].strip()[2:].strip())
        index -= 1
    return " ".join(reversed(found)) or None


class RestDocstrings(griffe.Extension):
    """Rewrite every docstring, and give ``#:``-commented attributes a docstring."""

    def on_instance(self, *, node: ast.AST | griffe.ObjectNode, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)

    def on_attribute_instance(
        self, *, node: ast.AST | griffe.ObjectNode, attr: griffe.Attribute, **kwargs: Any
    ) -> None:
        if attr.docstring is not None or attr.lineno is None:
            return
        try:
            lines = list(attr.module.lines)
        except (AttributeError, griffe.BuiltinModuleError):
            return
        if text := _comment_doc(lines, attr.lineno):
            attr.docstring = griffe.Docstring(to_markdown(text), parent=attr)
