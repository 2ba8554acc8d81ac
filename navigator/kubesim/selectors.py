"""Label and field selectors with the grammar and semantics of k8s.io/apimachinery.

Label selectors are the core's model (``navigator.selectors``), with ``>`` and
``<`` on as the API server has them; this module turns its errors into the API
server's 400s. Field selectors are the simulator's own: Navigator queries have none.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from navigator.selectors import LabelSelector, SelectorError, parse_selector

from .errors import ApiError

__all__ = ["FieldSelector", "LabelSelector", "parse_label_selector"]

#: What an empty ``labelSelector`` parses to: no requirements, matches everything.
EVERYTHING = LabelSelector(())


def parse_label_selector(text: str | None) -> LabelSelector:
    """A ``labelSelector`` query parameter; a bad one is a 400 like the API server's."""
    try:
        return parse_selector(text, numeric=True) or EVERYTHING
    except SelectorError as exc:
        raise ApiError.bad_request(f"unable to parse requirement: {exc}") from None


def _split_unescaped(s: str, sep: str) -> list[str]:
    out, cur, esc = [], [], False
    for ch in s:
        if esc:
            cur.append("\\" + ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == sep:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _unescape(s: str) -> str:
    return re.sub(r"\\(.)", r"\1", s)


_FIELD_OP_RE = re.compile(r"^(.*?)(==|!=|=)(.*)$")


class FieldSelector:
    """A parsed ``fieldSelector``: ANDed ``field=value`` / ``field!=value`` terms."""

    def __init__(self, terms: list[tuple[str, bool, str]]) -> None:
        self.terms = terms  # (field, equal?, value)

    @classmethod
    def parse(cls, text: str | None, allowed: Callable[[str], bool]) -> FieldSelector:
        if not text or not text.strip():
            return cls([])
        terms: list[tuple[str, bool, str]] = []
        for part in _split_unescaped(text, ","):
            if not part:
                continue
            m = _FIELD_OP_RE.match(part)
            if not m:
                raise ApiError.bad_request(f"invalid selector: '{text}'; can't understand '{part}'")
            fld, op, value = m.group(1).strip(), m.group(2), _unescape(m.group(3))
            if not allowed(fld):
                raise ApiError.bad_request(f"field label not supported: {fld}")
            terms.append((fld, op != "!=", value))
        return cls(terms)

    def __bool__(self) -> bool:
        return bool(self.terms)

    def matches(self, get: Callable[[str], str]) -> bool:
        return all((get(f) == v) == eq for f, eq, v in self.terms)

    def single_name(self) -> str | None:
        """The name when the selector pins ``metadata.name``; lets lists skip a full scan."""
        for f, eq, v in self.terms:
            if f == "metadata.name" and eq:
                return v
        return None
