"""The bounded, coalescing mailbox behind each WatchJob stream."""

from __future__ import annotations

import asyncio

import pytest

from spoold.errors import JobNotFound, ShuttingDown
from spoold.notify import Mailbox


async def test_keeps_the_latest_items_up_to_its_bound() -> None:
    box: Mailbox[int] = Mailbox(3)
    for i in range(1000):
        box.put(i)
        assert len(box) <= 3
    assert box.coalesced == 997
    assert [await box.get() for _ in range(3)] == [997, 998, 999]


async def test_get_waits_for_a_put() -> None:
    box: Mailbox[str] = Mailbox(1)
    waiting = asyncio.ensure_future(box.get())
    await asyncio.sleep(0)  # one turn of the loop: get() is now parked on the mailbox
    assert not waiting.done()
    box.put("x")
    assert await asyncio.wait_for(waiting, 5) == "x"


async def test_close_after_draining_or_at_once() -> None:
    drained: Mailbox[int] = Mailbox(4)
    drained.put(1)
    drained.close(JobNotFound(7), drain_first=True)
    drained.put(2)  # ignored once closed
    assert await drained.get() == 1
    with pytest.raises(JobNotFound):
        await drained.get()

    now: Mailbox[int] = Mailbox(4)
    now.put(1)
    now.close(ShuttingDown("bye"), drain_first=False)
    with pytest.raises(ShuttingDown):
        await now.get()


def test_bound_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Mailbox(0)
