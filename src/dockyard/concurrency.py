"""Running many awaitables with a bound on how many are in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
A = TypeVar("A")


async def each(limit: int, work: Callable[[A], Awaitable[T]], items: Iterable[A]) -> list[T]:
    """`work` of every item, with at most `limit` in flight; results in order."""
    slots = asyncio.Semaphore(limit)

    async def run(item: A) -> T:
        async with slots:
            return await work(item)

    return list(await asyncio.gather(*(run(item) for item in items)))
