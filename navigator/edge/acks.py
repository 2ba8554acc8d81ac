"""Acks on the edge: every state message is acknowledged by sequence, in the order it was sent.

A state split into chunks gets one ack per chunk: ``BUFFERED`` until the last,
whose ack carries the outcome of the whole state. The stream reader hands acks
in; the writer waits for the ones it is owed, so a missing or out-of-order ack
ends the stream instead of being silently skipped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from loguru import logger

from navigator.v1 import sync_pb2


class AckTimeout(Exception):
    """No ack within ``manager.ack_timeout``: the stream is presumed dead."""


class AckOutOfOrder(Exception):
    """The manager acknowledged a sequence other than the one owed next."""


def ack_status_name(status: int) -> str:
    try:
        return sync_pb2.AckStatus.Name(status).removeprefix("ACK_STATUS_")  # type: ignore[arg-type]
    except ValueError:
        return f"UNKNOWN({status})"


class PendingAcks:
    """The acks received on one stream and not yet claimed by the writer."""

    def __init__(self) -> None:
        self._received: asyncio.Queue[sync_pb2.Ack] = asyncio.Queue()

    def received(self, ack: sync_pb2.Ack) -> None:
        self._received.put_nowait(ack)

    async def outcome(self, sequences: Sequence[int], timeout: float) -> sync_pb2.Ack | None:
        """Wait for the ack of each of ``sequences`` in order; the one that decides the state.

        That is the last chunk's ack, or an earlier chunk's that is neither ``BUFFERED``
        nor ``APPLIED`` (the manager refused the set part-way; later chunks are refused too).
        """
        final: sync_pb2.Ack | None = None
        for index, sequence in enumerate(sequences):
            try:
                ack = await asyncio.wait_for(self._received.get(), timeout)
            except TimeoutError:
                raise AckTimeout(f"no ack for state {sequence} within {timeout:.1f}s") from None
            if ack.sequence != sequence:
                raise AckOutOfOrder(f"expected the ack of state {sequence}, got one for {ack.sequence}")
            last = index == len(sequences) - 1
            if not last and ack.status == sync_pb2.ACK_STATUS_BUFFERED:
                continue
            # A delta's messages are applied one by one: one refused decides the state even if later ones applied.
            if final is None or final.status == sync_pb2.ACK_STATUS_APPLIED:
                final = ack
            if not last:
                logger.warning(
                    "chunk {}/{} of state {} was acked {}: {}",
                    index + 1,
                    len(sequences),
                    sequences[0],
                    ack_status_name(ack.status),
                    ack.error,
                )
        return final
