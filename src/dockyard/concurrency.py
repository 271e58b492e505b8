"""Running many awaitables with a bound on how many are in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar, cast

T = TypeVar("T")
A = TypeVar("A")


async def each(limit: int, work: Callable[[A], Awaitable[T]], items: Iterable[A]) -> list[T]:
    """`work` of every item, with at most `limit` in flight; results in order."""
    todo = list(items)
    results: list[T | None] = [None] * len(todo)
    pending = iter(enumerate(todo))

    async def worker() -> None:
        for position, item in pending:
            # One item per turn of the event loop: work that never waits (a local disk
            # answers at once) would otherwise all run in one turn, keeping requests out
            # for as long as, say, a walk of the whole store takes.
            await asyncio.sleep(0)
            results[position] = await work(item)

    await asyncio.gather(*(worker() for _ in range(min(limit, len(todo)))))
    return cast(list[T], results)  # every slot is filled by now
