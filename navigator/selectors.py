"""Kubernetes label selectors (``app=web,tier!=db,env in (a,b),!legacy``), parsed once and matched anywhere.

Backends may translate the requirements to SQL; ``matches`` is the reference
semantics they must agree with.
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


@dataclass(frozen=True, slots=True)
class LabelSelector:
    requirements: tuple[Requirement, ...]
    text: str = ""

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def equalities(self) -> dict[str, str]:
        """The ``key=value`` requirements: the part an index can serve directly."""
        return {r.key: r.values[0] for r in self.requirements if r.operator is Operator.EQUALS}

    def __str__(self) -> str:
        return self.text


_KEY = r"[A-Za-z0-9]([-A-Za-z0-9_./]*[A-Za-z0-9])?"
_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_SET = re.compile(rf"^\s*({_KEY})\s+(in|notin)\s+\((.*)\)\s*$")
_EQ = re.compile(rf"^\s*({_KEY})\s*(==|=|!=)\s*(.*?)\s*$")
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
    if not re.fullmatch(_VALUE, value) or len(value) > 63:
        raise SelectorError(f"invalid label value {value!r} in {part.strip()!r}")
    return value


def parse_selector(text: str | None) -> LabelSelector | None:
    """Parse a selector; empty or ``None`` gives ``None`` (match everything)."""
    if text is None or not text.strip():
        return None
    requirements = []
    for part in split_requirements(text):
        if not part.strip():
            raise SelectorError(f"empty requirement in label selector {text!r}")
        if m := _SET.match(part):
            values = tuple(_check_value(v.strip(), part) for v in m.group(4).split(","))
            op = Operator.IN if m.group(3) == "in" else Operator.NOT_IN
            requirements.append(Requirement(m.group(1), op, values))
        elif m := _EQ.match(part):
            op = Operator.NOT_EQUALS if m.group(3) == "!=" else Operator.EQUALS
            requirements.append(Requirement(m.group(1), op, (_check_value(m.group(4), part),)))
        elif m := _EXISTS.match(part):
            op = Operator.NOT_EXISTS if m.group(1) else Operator.EXISTS
            requirements.append(Requirement(m.group(2), op))
        else:
            raise SelectorError(f"cannot parse {part.strip()!r} in label selector {text!r}")
    return LabelSelector(tuple(requirements), text.strip())
