"""Kubernetes label selectors (``app=web,tier!=db,env in (a,b),!legacy``), parsed once and matched anywhere.

The one label-selector model of Navigator: the query path (CLI, manager,
storage backends) and the Kubernetes simulator (``navigator.kubesim``) both
parse with ``parse_selector`` and match with ``LabelSelector.matches``.
Backends may translate the requirements to SQL; ``matches`` is the reference
semantics they must agree with.

The grammar and semantics are those of k8s.io/apimachinery's ``labels.Parse``:
``=``/``==``, ``!=`` (also true when the key is missing), ``in``/``notin``
(``notin`` also true when the key is missing), ``key`` and ``!key``, values of
at most 63 characters. ``key>n`` and ``key<n`` (Gt, Lt: an integer label value
above or below ``n``) are only accepted with ``numeric=True``: the simulator
serves them like the API server does, the query path (whose storage backends
translate only the other operators) does not. One deliberate difference from
apimachinery: ``key in ()`` is refused, as an empty set (apimachinery reads it
as the set holding the empty value); ``key notin ()`` is accepted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class SelectorError(ValueError):
    """The selector text is not valid; the message points at the bad part."""


class Operator(StrEnum):
    EQUALS = "="
    NOT_EQUALS = "!="
    IN = "in"
    NOT_IN = "notin"
    EXISTS = "exists"
    NOT_EXISTS = "!"
    #: ``key>n`` and ``key<n``; only in selectors parsed with ``numeric=True``.
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        match self.operator:
            case Operator.EQUALS | Operator.IN:
                return present and labels[self.key] in self.values
            case Operator.NOT_EQUALS | Operator.NOT_IN:
                return not present or labels[self.key] not in self.values
            case Operator.EXISTS:
                return present
            case Operator.NOT_EXISTS:
                return not present
            case Operator.GREATER_THAN | Operator.LESS_THAN:
                # Like apimachinery: a missing or non-integer label value never matches.
                if not present or not _INTEGER.fullmatch(labels[self.key]):
                    return False
                value, bound = int(labels[self.key]), int(self.values[0])
                return value > bound if self.operator is Operator.GREATER_THAN else value < bound


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """ANDed requirements; one without any (false in a boolean context) matches everything."""

    requirements: tuple[Requirement, ...]
    text: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def equalities(self) -> dict[str, str]:
        """The ``key=value`` requirements: the part an index can serve directly."""
        return {r.key: r.values[0] for r in self.requirements if r.operator is Operator.EQUALS}

    def __str__(self) -> str:
        return self.text


_KEY = r"[A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = re.compile(r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?")
#: What Go's strconv.ParseInt(s, 10, 64) reads (the range aside): Gt/Lt bounds and label values.
_INTEGER = re.compile(r"[-+]?[0-9]+")
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s*\((.*)\)\s*$")
_OP = re.compile(rf"^\s*({_KEY})\s*(==|=|!=|>|<)\s*(.*?)\s*$")
_EXISTS = re.compile(rf"^\s*(!?)\s*({_KEY})\s*$")


def split_requirements(text: str) -> list[str]:
    """Split a selector on the commas outside parentheses (``env in (a,b)`` stays whole)."""
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _check_value(value: str, part: str) -> str:
    if not _VALUE.fullmatch(value) or len(value) > 63:
        raise SelectorError(f"invalid label value {value!r} in {part.strip()!r}")
    return value


_OPERATORS = {
    "=": Operator.EQUALS,
    "==": Operator.EQUALS,
    "!=": Operator.NOT_EQUALS,
    ">": Operator.GREATER_THAN,
    "<": Operator.LESS_THAN,
}


def _requirement(part: str, text: str, numeric: bool) -> Requirement:
    if not part.strip():
        raise SelectorError(f"empty requirement in label selector {text!r}")
    if m := _SET.match(part):
        key, word, inner = m.groups()
        values = tuple(_check_value(v.strip(), part) for v in inner.split(","))
        if word == "in" and values == ("",):
            raise SelectorError(f"for 'in', 'notin' operators, values set can't be empty: {part.strip()!r}")
        return Requirement(key, Operator.IN if word == "in" else Operator.NOT_IN, values)
    if m := _OP.match(part):
        key, symbol, value = m.groups()
        op = _OPERATORS[symbol]
        if op in (Operator.GREATER_THAN, Operator.LESS_THAN):
            if not numeric:
                raise SelectorError(
                    f"cannot use {symbol!r} in label selector {text!r}: only =, ==, !=, in, notin, key and !key"
                )
            if not _INTEGER.fullmatch(value):
                raise SelectorError(f"for 'Gt', 'Lt' operators, the value must be an integer: {part.strip()!r}")
            return Requirement(key, op, (value,))
        return Requirement(key, op, (_check_value(value, part),))
    if m := _EXISTS.match(part):
        return Requirement(m.group(2), Operator.NOT_EXISTS if m.group(1) else Operator.EXISTS)
    raise SelectorError(f"cannot parse {part.strip()!r} in label selector {text!r}")


def parse_selector(text: str | None, *, numeric: bool = False) -> LabelSelector | None:
    """Parse a selector; empty or ``None`` gives ``None`` (match everything).

    ``numeric`` also accepts ``key>n`` and ``key<n`` (for the simulator: storage
    backends do not translate them). Raises ``SelectorError`` naming the bad part.
    """
    if text is None or not text.strip():
        return None
    requirements = tuple(_requirement(part, text, numeric) for part in split_requirements(text))
    return LabelSelector(requirements, text.strip())
