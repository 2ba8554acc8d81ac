"""What a partial state means for the stored view.

A FULL state replaces the stored objects of the kinds it covers: those the edge
collected now (``kinds``) and those it sends from its last good collection
(``cached_kinds``). A kind in neither failed without a fallback: its stored
objects stay as they were, and its error is kept on the cluster until a later
state lists the kind as collected again, or until a FULL state, whose ``errors``
list every kind failing now, no longer names it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from navigator.interfaces import KindErrorRecord

if TYPE_CHECKING:
    from navigator.manager.validation import StateSet


def covered_kinds(state: StateSet) -> set[str]:
    """Kinds whose stored set this state replaces."""
    return set(state.kinds) | set(state.cached_kinds)


def merge_errors(old: Sequence[KindErrorRecord], state: StateSet, now: datetime) -> list[KindErrorRecord]:
    """Errors stay until a state lists their kind in ``kinds`` again; a still-failing kind keeps its ``since``.

    A FULL's ``errors`` are complete (every kind failing now), so after one only those
    remain: an error of a kind the edge no longer sends at all does not stay forever.
    """
    cleared = set(state.kinds)
    failing = {e.kind for e in state.errors}
    merged = {e.kind: e for e in old if e.kind not in cleared and (not state.full or e.kind in failing)}
    for e in state.errors:
        previous = merged.get(e.kind)
        since = previous.since if previous is not None and previous.since is not None else now
        merged[e.kind] = KindErrorRecord(e.kind, e.message, e.http_status, e.cached, since)
    return sorted(merged.values(), key=lambda e: e.kind)
