"""The Coalescer on its own: what piles up while a flush runs goes together into the next one."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from spoold.store.coalesce import Coalescer, KeyedCoalescer
from tests.conftest import wait_until


class Gate:
    """A flush function that records each batch and waits for the test to let it finish."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.open = asyncio.Event()
        self.fail: Exception | None = None

    async def flush(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.open.wait()
        if self.fail is not None:
            raise self.fail
        return [i * 10 for i in items]


async def started(gate: Gate, count: int) -> None:
    await wait_until(lambda: len(gate.batches) >= count)


Call = asyncio.Task[Sequence[int]]


async def behind_a_flush(
    c: Coalescer[int, int], gate: Gate, first: list[int], *later: list[int]
) -> tuple[Call, list[Call]]:
    """Starts a flush of `first`, held by the gate, then queues the `later` calls behind it."""
    running = asyncio.create_task(c.submit(first))
    await started(gate, 1)
    queued = [asyncio.create_task(c.submit(items)) for items in later]
    await wait_until(lambda: c.queued == len(later))
    return running, queued


async def test_an_idle_coalescer_flushes_at_once() -> None:
    gate = Gate()
    gate.open.set()
    c = Coalescer(gate.flush, max_items=100)
    assert await c.submit([1, 2]) == [10, 20]
    assert gate.batches == [[1, 2]]


async def test_calls_arriving_during_a_flush_share_the_next_one() -> None:
    gate = Gate()
    c = Coalescer(gate.flush, max_items=100)
    first, later = await behind_a_flush(c, gate, [1], [2, 3], [4, 5], [6, 7])
    gate.open.set()
    assert await first == [10]
    assert [await t for t in later] == [[20, 30], [40, 50], [60, 70]]
    assert gate.batches == [[1], [2, 3, 4, 5, 6, 7]]


async def test_a_flush_takes_whole_calls_up_to_max_items() -> None:
    gate = Gate()
    c = Coalescer(gate.flush, max_items=3)
    first, calls = await behind_a_flush(c, gate, [0], [1, 2], [3, 4], [5, 6, 7, 8], [9])
    gate.open.set()
    await asyncio.gather(first, *calls)
    # [3, 4] does not fit beside [1, 2]; [5..8] is larger than max_items and goes alone.
    assert gate.batches == [[0], [1, 2], [3, 4], [5, 6, 7, 8], [9]]


async def test_a_failed_flush_fails_every_call_in_it() -> None:
    gate = Gate()
    c = Coalescer(gate.flush, max_items=100)
    first, (second, third) = await behind_a_flush(c, gate, [1], [2], [3])
    gate.fail = RuntimeError("statement failed")
    gate.open.set()
    for t in (first, second, third):
        with pytest.raises(RuntimeError, match="statement failed"):
            await t
    assert gate.batches == [[1], [2, 3]]
    gate.fail = None
    assert await c.submit([4]) == [40]


async def test_a_call_cancelled_while_it_waits_is_dropped_and_the_others_go_on() -> None:
    gate = Gate()
    c = Coalescer(gate.flush, max_items=100)
    first, (gone, kept) = await behind_a_flush(c, gate, [1], [2], [3])
    gone.cancel()
    await wait_until(lambda: c.queued == 1)  # ... as soon as it is cancelled
    gate.open.set()
    assert await first == [10]
    assert await kept == [30]
    assert gone.cancelled()
    assert gate.batches == [[1], [3]]  # a call cancelled while it waited is not sent


async def test_keyed_coalescers_flush_independently_and_are_forgotten_when_idle() -> None:
    gate = Gate()
    seen: list[tuple[str, list[int]]] = []

    async def flush(key: str, items: list[int]) -> list[int]:
        seen.append((key, items))
        return await gate.flush(items)

    keyed: KeyedCoalescer[str, int, int] = KeyedCoalescer(flush, max_items=100)
    a = asyncio.create_task(keyed.submit("a", [1]))
    b = asyncio.create_task(keyed.submit("b", [2]))
    await started(gate, 2)  # b did not wait for a: they are different keys
    assert len(keyed) == 2
    gate.open.set()
    assert (await a, await b) == ([10], [20])
    await wait_until(lambda: len(keyed) == 0)
    assert sorted(seen) == [("a", [1]), ("b", [2])]


async def test_an_isolated_failure_is_retried_call_by_call_so_only_the_bad_call_fails() -> None:
    gate = Gate()
    flushed: list[list[int]] = []

    async def flush(items: list[int]) -> list[int]:
        flushed.append(items)
        if len(flushed) == 1:
            await gate.open.wait()
        if any(i < 0 for i in items):
            raise ValueError("negative")
        return [i * 10 for i in items]

    c = Coalescer(flush, max_items=100, isolate=(ValueError,))
    first = asyncio.create_task(c.submit([0]))
    await wait_until(lambda: len(flushed) == 1)
    calls = [asyncio.create_task(c.submit(items)) for items in ([1], [-1, 2], [3])]
    await wait_until(lambda: c.queued == 3)
    gate.open.set()
    assert await first == [0]
    assert await calls[0] == [10]
    with pytest.raises(ValueError, match="negative"):
        await calls[1]
    assert await calls[2] == [30]
    assert flushed == [[0], [1, -1, 2, 3], [1], [-1, 2], [3]]


async def test_a_call_of_alone_from_items_runs_at_once_beside_a_running_flush() -> None:
    gate = Gate()
    c = Coalescer(gate.flush, max_items=100, alone_from=3)
    small = asyncio.create_task(c.submit([1]))
    await started(gate, 1)
    big = asyncio.create_task(c.submit([2, 3, 4]))
    await started(gate, 2)  # did not wait for the first flush to end
    gate.open.set()
    assert (await small, await big) == ([10], [20, 30, 40])
    assert gate.batches == [[1], [2, 3, 4]]
