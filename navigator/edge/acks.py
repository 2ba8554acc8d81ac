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


class Outstanding:
    """The sequences of one state's messages, added as they are sent, and how far their acks got.

    An open chunk set does not know its size when its first chunk leaves, so its acks
    are awaited while later chunks are still being built: ``end`` says there are no more.
    """

    def __init__(self, sequences: Sequence[int] = ()) -> None:
        self.sequences: list[int] = list(sequences)
        self.ended = False
        #: Acks received so far.
        self.acked = 0
        #: The first ack that refused the set part-way (neither BUFFERED nor APPLIED): later chunks are refused too.
        self.refused: sync_pb2.Ack | None = None
        self._changed = asyncio.Event()

    @property
    def unacked(self) -> int:
        return len(self.sequences) - self.acked

    def add(self, sequence: int) -> None:
        self.sequences.append(sequence)
        self._notify()

    def acked_one(self, ack: sync_pb2.Ack) -> None:
        """The next message's ack arrived."""
        self.acked += 1
        refused = ack.status not in (sync_pb2.ACK_STATUS_BUFFERED, sync_pb2.ACK_STATUS_APPLIED)
        if refused and self.refused is None:
            self.refused = ack
        self._notify()

    def end(self) -> None:
        """Every message of the state is in ``sequences``."""
        self.ended = True
        self._notify()

    def _notify(self) -> None:
        # A fresh event per change: a waiter holds the one that was current when it looked.
        self._changed.set()
        self._changed = asyncio.Event()

    def changed(self) -> asyncio.Event:
        """Set at the next change (a message added, an ack, the end)."""
        return self._changed


class PendingAcks:
    """The acks received on one stream and not yet claimed by the writer."""

    def __init__(self) -> None:
        self._received: asyncio.Queue[sync_pb2.Ack] = asyncio.Queue()

    def received(self, ack: sync_pb2.Ack) -> None:
        self._received.put_nowait(ack)

    async def outcome(self, sequences: Sequence[int] | Outstanding, timeout: float) -> sync_pb2.Ack | None:
        """Wait for the ack of each of ``sequences`` in order; the one that decides the state.

        That is the last message's ack, or an earlier chunk's that is neither ``BUFFERED``
        nor ``APPLIED`` (the manager refused the set part-way; later chunks are refused too).
        ``Outstanding`` sequences may still grow while this waits, until they are ended.
        Each ack is awaited at most ``timeout`` once its message is known.
        """
        if isinstance(sequences, Outstanding):
            pending = sequences
        else:
            pending = Outstanding(sequences)
            pending.end()
        final: sync_pb2.Ack | None = None
        last_ack: sync_pb2.Ack | None = None
        index = 0
        while True:
            if index >= len(pending.sequences):
                if pending.ended:
                    break
                await pending.changed().wait()
                continue
            sequence = pending.sequences[index]
            try:
                ack = await asyncio.wait_for(self._received.get(), timeout)
            except TimeoutError:
                raise AckTimeout(f"no ack for state {sequence} within {timeout:.1f}s") from None
            if ack.sequence != sequence:
                raise AckOutOfOrder(f"expected the ack of state {sequence}, got one for {ack.sequence}")
            index += 1
            pending.acked_one(ack)
            last_ack = ack
            last = pending.ended and index == len(pending.sequences)
            if not last and ack.status == sync_pb2.ACK_STATUS_BUFFERED:
                continue
            # A delta's messages are applied one by one: one refused decides the state even if later ones applied.
            if final is None or final.status == sync_pb2.ACK_STATUS_APPLIED:
                final = ack
        refused = pending.refused
        if refused is not None and refused.sequence != pending.sequences[-1]:
            logger.warning(
                "message {}/{} of state {} was acked {}: {}",
                pending.sequences.index(refused.sequence) + 1,
                len(pending.sequences),
                pending.sequences[0],
                ack_status_name(refused.status),
                refused.error,
            )
        # The last message's ack arrived before it was known to be the last, and said BUFFERED: not an outcome,
        # which the caller finds out (a set the edge abandoned; else the manager broke the protocol).
        return final if final is not None else last_ack
