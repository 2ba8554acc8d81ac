"""Label and field selectors with the grammar and semantics of k8s.io/apimachinery."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from navigator.selectors import split_requirements

from .errors import ApiError

_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KEY_RE = re.compile(_KEY)
_VALUE_RE = re.compile(_VALUE)
_SET_RE = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\((.*)\)\s*$")
_OP_RE = re.compile(rf"^\s*({_KEY})\s*(==|=|!=|>|<)\s*(\S*)\s*$")
_EXISTS_RE = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.op
        if op == "=":
            v = labels.get(self.key)
            return v is not None and v in self.values
        if op == "in":
            return labels.get(self.key) in self.values
        if op == "!=" or op == "notin":
            v = labels.get(self.key)
            return v is None or v not in self.values
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        v = labels.get(self.key)
        if v is None:
            return False
        try:
            n = int(v)
        except ValueError:
            return False
        (bound,) = self.values
        return n > int(bound) if op == "gt" else n < int(bound)


class LabelSelector:
    """A parsed ``labelSelector``; an empty one matches everything."""

    def __init__(self, requirements: list[Requirement]) -> None:
        self.requirements = requirements

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        if not text or not text.strip():
            return cls([])
        reqs: list[Requirement] = []
        for part in split_requirements(text):
            reqs.append(_parse_requirement(part, text))
        return cls(reqs)

    @classmethod
    def from_match_labels(cls, labels: Mapping[str, str]) -> LabelSelector:
        return cls([Requirement(k, "=", frozenset([v])) for k, v in labels.items()])

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def _parse_requirement(part: str, whole: str) -> Requirement:
    def bad(why: str) -> ApiError:
        return ApiError.bad_request(f"unable to parse requirement: {why}")

    if not part.strip():
        raise bad(f"found '', expected: identifier in {whole!r}")
    m = _SET_RE.match(part)
    if m:
        key, op, inner = m.groups()
        values = [v.strip() for v in inner.split(",")]
        for v in values:
            if not _VALUE_RE.fullmatch(v):
                raise bad(f"invalid label value: {v!r}")
        if op == "in" and values == [""]:
            raise bad("for 'in', 'notin' operators, values set can't be empty")
        return Requirement(key, op, frozenset(values))
    m = _OP_RE.match(part)
    if m:
        key, op, value = m.groups()
        if op in ("<", ">"):
            try:
                int(value)
            except ValueError:
                raise bad(f"for 'Gt', 'Lt' operators, the value must be an integer: {value!r}") from None
            return Requirement(key, "gt" if op == ">" else "lt", frozenset([value]))
        if not _VALUE_RE.fullmatch(value):
            raise bad(f"invalid label value: {value!r}")
        return Requirement(key, "!=" if op == "!=" else "=", frozenset([value]))
    m = _EXISTS_RE.match(part)
    if m:
        neg, key = m.groups()
        return Requirement(key, "!" if neg else "exists")
    raise bad(f"invalid selector: {part.strip()!r}")


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
