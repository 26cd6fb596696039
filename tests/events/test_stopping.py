"""A worker's delivery loop stops when the server stops, whenever the stop comes."""

from __future__ import annotations

import asyncio

from scim.events.delivery import Transmitter


async def _loop(woken: asyncio.Event) -> None:
    """As ``Transmitter.run`` waits between looks: woken, it goes on to the next."""
    while True:
        await Transmitter._until(woken, 5)
        woken = asyncio.Event()
        await asyncio.sleep(0)


async def test_a_stop_that_comes_as_events_commit_stops_the_loop() -> None:
    """The stop cancels the loop; one that comes a moment after events committed (the wait
    is over but the loop has not moved on) stops it all the same. Python 3.11's
    ``asyncio.wait_for`` swallowed such a cancellation: the loop ran on past the server's
    stop, holding the lease of a receiver it never handed back."""
    for ticks in range(4):
        woken = asyncio.Event()
        task = asyncio.create_task(_loop(woken))
        await asyncio.sleep(0)
        woken.set()
        for _ in range(ticks):
            await asyncio.sleep(0)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=1)
        assert done == {task} and task.cancelled(), f"ran on after a stop {ticks} ticks late"
