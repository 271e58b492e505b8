"""Terminal output for long work: progress bars on a terminal, plain lines otherwise."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dockyard.index.base import Index
from dockyard.registry.reindex import SyncReport, synchronize
from dockyard.storage import StorageDriver

T = TypeVar("T")
# Without a terminal, how often a long indexing says how far it is.
LOG_EVERY = 10.0


def run_on(driver: StorageDriver, work: Coroutine[Any, Any, T], index: Index | None = None
           ) -> T:
    """Run `work` in an event loop of its own, then let the driver and the index release
    what they hold for that loop (S3's and PostgreSQL's connections), so nothing is left
    open when the loop closes."""
    async def run() -> T:
        try:
            return await work
        finally:
            await driver.close()
            if index is not None:
                await index.aclose()

    return asyncio.run(run())


@dataclass
class _Bar:
    """Feeds a rich progress bar from the callbacks `synchronize` takes."""

    progress: Progress | None
    task: int | None = None

    def total(self, count: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task("indexing repositories", total=count)

    def step(self, _: str) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.advance(self.task)  # type: ignore[arg-type]


@dataclass
class _Lines:
    """The same callbacks as `_Bar`, as a log line every LOG_EVERY seconds (no terminal)."""

    log: Callable[[str], None]
    count: int = 0
    done: int = 0
    last: float = 0.0

    def total(self, count: int) -> None:
        self.count = count
        self.last = time.monotonic()

    def step(self, _: str) -> None:
        self.done += 1
        now = time.monotonic()
        if now - self.last >= LOG_EVERY and self.done < self.count:
            self.last = now
            self.log(f"index: {self.done} of {self.count} repositories checked")


def synchronize_index(driver: StorageDriver, index: Index, full: bool,
                      log: Callable[[str], None], check_only: bool = False) -> SyncReport:
    """Bring the index in line with the store (or, `check_only`, compare them), with a
    progress bar on a terminal."""
    console = Console(stderr=True)
    started = time.monotonic()
    if console.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, transient=True) as progress:
            bar = _Bar(progress)
            report = run_on(driver, synchronize(driver, index, full, bar.step, bar.total,
                                                check_only=check_only), index)
    else:
        lines = _Lines(log)
        report = run_on(driver, synchronize(driver, index, full, lines.step, lines.total,
                                            check_only=check_only), index)
    elapsed = time.monotonic() - started
    if check_only:
        return report
    if report.reindexed or report.removed or full:
        log(f"index: {report.repositories} repositories, {len(report.reindexed)} re-read, "
            f"{len(report.removed)} dropped ({elapsed:.1f}s)")
    return report


def gc_progress() -> AbstractContextManager[Callable[[str, int, int], None] | None]:
    """A (phase, done, total) callback drawing a bar per phase on a terminal."""
    return phase_progress(lambda phase: f"collecting {phase}")


@contextmanager
def phase_progress(describe: Callable[[str], str]
                   ) -> Iterator[Callable[[str, int, int], None] | None]:
    """A (phase, done, total) callback drawing a bar per phase on a terminal (None
    elsewhere); `describe` labels a phase's bar."""
    console = Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(describe(phase), total=total)
            progress.update(tasks[phase], completed=done)

        yield update


@contextmanager
def counted_progress(description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A (done, total) callback drawing one bar on a terminal (None elsewhere)."""
    with phase_progress(lambda _: description) as update:
        if update is None:
            yield None
            return
        yield lambda done, total: update(description, done, total)


def err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
