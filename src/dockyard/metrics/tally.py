"""Counting in a request without writing the shared metric files.

Each increment of a metric in prometheus_client's multi-process mode takes a lock and
writes the memory-mapped file of the process: microseconds, many times over for each
request. The metrics that move on every request (registry_http_*, registry_storage_*) are
counted here, in plain numbers of the worker, and written to their metrics by `flush`,
every FLUSH_EVERY seconds and when the worker stops: a scrape is that much behind, and a
request costs additions."""

from __future__ import annotations

import asyncio
import contextlib
from bisect import bisect_left
from typing import Any, TypeVar

FLUSH_EVERY = 1.0


class CounterTally:
    __slots__ = ("_child", "_written", "value")

    def __init__(self, child: Any) -> None:
        self._child = child
        self.value = 0.0
        self._written = 0.0

    def flush(self) -> None:
        if self.value != self._written:
            self._child.inc(self.value - self._written)
            self._written = self.value


class GaugeTally(CounterTally):
    __slots__ = ()

    def flush(self) -> None:
        if self.value != self._written:
            self._child.set(self.value)
            self._written = self.value


class HistogramTally:
    """Observations counted by bucket. The flush adds to the child's bucket and sum values,
    which prometheus_client's Histogram keeps as `_buckets` and `_sum` (since its first
    releases): its public `observe` adds one observation a call, a file write each."""

    __slots__ = ("_bounds", "_child", "_written", "_written_sum", "counts", "total")

    def __init__(self, child: Any) -> None:
        self._child = child
        self._bounds: list[float] = list(child._upper_bounds)
        self.counts = [0] * len(self._bounds)
        self._written = [0] * len(self._bounds)
        self.total = 0.0
        self._written_sum = 0.0

    def observe(self, value: float) -> None:
        # The first bucket whose bound is at least the value, as prometheus_client puts it.
        self.counts[bisect_left(self._bounds, value)] += 1
        self.total += value

    def flush(self) -> None:
        if self.counts == self._written:
            return
        for index, (count, written) in enumerate(zip(self.counts, self._written,
                                                     strict=True)):
            if count != written:
                self._child._buckets[index].inc(count - written)
        self._child._sum.inc(self.total - self._written_sum)
        self._written, self._written_sum = list(self.counts), self.total


Tally = TypeVar("Tally", CounterTally, GaugeTally, HistogramTally)
_tallies: list[CounterTally | HistogramTally] = []


def counter(child: Any) -> CounterTally:
    return _kept(CounterTally(child))


def gauge(child: Any) -> GaugeTally:
    return _kept(GaugeTally(child))


def histogram(child: Any) -> HistogramTally:
    return _kept(HistogramTally(child))


def _kept(tally: Tally) -> Tally:
    _tallies.append(tally)
    return tally


def flush() -> None:
    for tally in _tallies:
        tally.flush()


async def flush_forever(every: float = FLUSH_EVERY) -> None:
    try:
        while True:
            await asyncio.sleep(every)
            flush()
    finally:
        with contextlib.suppress(Exception):
            flush()  # the worker is stopping: what it counted last is kept too
