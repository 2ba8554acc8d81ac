"""Acks on the manager: the answer to each state message, by sequence.

``BUFFERED`` for a chunk held until its set is complete, ``APPLIED`` with the
change tally, ``INVALID`` (the state is wrong; nothing stored changed, the edge
resyncs) and ``RETRY`` (storage failed; the edge sends a full state again).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from navigator.resource import Change, ChangeType
from navigator.v1 import sync_pb2


def buffered(sequence: int) -> sync_pb2.Ack:
    return sync_pb2.Ack(sequence=sequence, status=sync_pb2.ACK_STATUS_BUFFERED)


def invalid(sequence: int, error: str) -> sync_pb2.Ack:
    return sync_pb2.Ack(sequence=sequence, status=sync_pb2.ACK_STATUS_INVALID, error=error)


def retry(sequence: int, error: str) -> sync_pb2.Ack:
    return sync_pb2.Ack(sequence=sequence, status=sync_pb2.ACK_STATUS_RETRY, error=error)


def applied(sequence: int, changes: Sequence[Change]) -> sync_pb2.Ack:
    tally = Counter(c.type for c in changes)
    return sync_pb2.Ack(
        sequence=sequence,
        status=sync_pb2.ACK_STATUS_APPLIED,
        added=tally[ChangeType.ADDED],
        modified=tally[ChangeType.MODIFIED],
        deleted=tally[ChangeType.DELETED],
    )
