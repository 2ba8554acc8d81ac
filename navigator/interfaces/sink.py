"""Who is told about changes: the manager hands every applied change set to the enabled sinks."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from navigator.resource import Change


@runtime_checkable
class Sink(Protocol):
    async def send(self, changes: Sequence[Change]) -> None:
        """Deliver one batch. Must not block the manager for long: queue, don't wait."""
        ...

    async def close(self) -> None:
        """Flush what can be flushed and stop."""
        ...


@dataclass(frozen=True, slots=True)
class SinkPlugin:
    """A sink a plugin offers under ``name`` (listed in ``sinks`` in the manager YAML)."""

    name: str
    #: Builds the sink from its options; raise ``ValueError`` naming a bad option.
    create: Callable[[Mapping[str, Any]], Sink]
    description: str = ""
