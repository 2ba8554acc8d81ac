"""The hand-over from the queue to the stream writer: a state taken from the queue is delivered or
put back, whatever moment the session ends at (the 50-edge reconnect storm lost one otherwise)."""

from __future__ import annotations

import asyncio

from navigator_plugins.serializers.json import JsonSerializer

from navigator.edge.messages import Delta, Sequencer
from navigator.edge.outbox import Outbox
from navigator.edge.stream import Negotiated, StreamClient
from navigator.testing.edge import edge_config


def client(outbox: Outbox) -> StreamClient:
    config = edge_config("no-kubeconfig", "none", "127.0.0.1:1", "east")
    return StreamClient(
        config, None, {}, outbox, Sequencer(), kinds=["pods"], on_accept=lambda: None, on_resync=lambda: None  # type: ignore[arg-type]
    )


async def test_a_state_taken_as_the_session_ends_goes_back_to_the_front_of_the_queue() -> None:
    # The session ends (its writer cancelled) at every possible step of the hand-over in turn.
    for steps in range(12):
        outbox = Outbox(10)
        writer = client(outbox)
        session = Negotiated(serializer=JsonSerializer(), target=1 << 20, limit=1 << 20, manager_id="m", heartbeat=30)
        state, later = Delta(), Delta()
        taking = asyncio.create_task(writer._next(session))
        await asyncio.sleep(0)
        await outbox.put(state)
        await outbox.put(later)
        for _ in range(steps):
            await asyncio.sleep(0)
        taking.cancel()
        try:
            taken = await taking
        except asyncio.CancelledError:
            taken = None
        queued = [await outbox.get() for _ in range(len(outbox))]
        if taken is None:
            assert queued == [state, later], f"cancelled after {steps} steps: the state was lost"
        else:
            assert taken is state and queued == [later], f"cancelled after {steps} steps"
