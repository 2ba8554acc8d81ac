"""Partial states: some kinds collected, some failed; what the edge tells the manager about each.

The spec asks for partial state when only some queries succeed and for cached
data as the fallback. A kind that failed but collected before is sent from its
last good collection (the fallback, flagged ``cached`` on the wire, in
``ClusterState.cached_kinds``), so the manager keeps serving it; a kind that
never collected is only reported as an error, and the manager leaves its stored
objects alone. Either way the error travels with the state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from navigator.edge.collect import CollectResult, KindFailure
from navigator.v1 import sync_pb2


@dataclass(slots=True)
class KindError:
    """A kind that failed, as reported to the manager."""

    kind: str
    failure: KindFailure
    #: Its objects are sent from the last good collection instead.
    cached: bool = False

    def to_proto(self) -> sync_pb2.KindError:
        return sync_pb2.KindError(
            kind=self.kind,
            message=self.failure.message,
            http_status=self.failure.http_status,
            attempts=self.failure.attempts,
            cached=self.cached,
        )


def collected_kinds(results: Mapping[str, CollectResult]) -> list[str]:
    """Kinds collected completely this time."""
    return [k for k, r in results.items() if r.ok]


def fallback_kinds(results: Mapping[str, CollectResult]) -> list[str]:
    """Kinds that failed and are sent from their last good collection."""
    return [k for k, r in results.items() if not r.ok and r.cached]


def kind_errors(results: Mapping[str, CollectResult]) -> list[KindError]:
    return [KindError(k, r.error, r.cached) for k, r in results.items() if r.error is not None]


def carried(results: Mapping[str, CollectResult]) -> Iterable[CollectResult]:
    """The results whose objects the state carries: collected now, or the fallback."""
    return [r for r in results.values() if r.ok or r.cached]
