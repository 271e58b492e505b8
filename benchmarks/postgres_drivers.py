#!/usr/bin/env python3
"""Which PostgreSQL driver should dockyard's index use? psycopg 3 and asyncpg side by side.

    python benchmarks/postgres_drivers.py [--dsn DSN] [--rounds 5] [--seconds 0.5]

Against a private PostgreSQL server (the test suite's ``run_postgres``: trust auth, fsync off,
loopback TCP), or the server of ``--dsn`` / ``DOCKYARD_TEST_POSTGRES_DSN`` (a fresh database
is created there and dropped at the end), each driver runs the shapes of work a registry
index does, by 1 and by 16 concurrent asyncio tasks on uvloop sharing one pool of as many
connections: a point SELECT of a tag by primary key; a short write transaction (BEGIN,
``pg_advisory_xact_lock``, an upsert of a tag, COMMIT); a page of 100 repository names
after a random name, out of 100,000.  psycopg runs from ``psycopg_pool.AsyncConnectionPool``
twice, with its default ``prepare_threshold`` (statements are prepared server-side after 5
executions on a connection) and with ``prepare_threshold=None`` (never prepared); asyncpg
from its own pool (it always prepares), twice: as it comes, where giving a connection back
to the pool costs a round trip (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET
ALL``), and with a ``reset`` that does nothing, as psycopg's pool does by default.  Each
measurement lasts ``--seconds``; rounds rotate which driver goes first and the tables hold
medians of operations per second, and of the client process's CPU time per operation.
Needs PostgreSQL (initdb, pg_ctl, postgres) unless a DSN is given, and
``pip install -e '.[bench]'`` (asyncpg).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import psycopg
import uvloop
from psycopg_pool import AsyncConnectionPool

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.postgres import (
    EXTERNAL_ENV,
    PostgresServer,
    external_postgres,
    find_pg_bindir,
    run_postgres,
)

REPOSITORIES = 100_000
TAGGED_REPOSITORIES = 1_000
TAGS_PER_REPOSITORY = 10
PAGE = 100
CONCURRENCIES = (1, 16)
SHAPES = {
    "point": "Point SELECT by primary key",
    "write": "Write transaction (advisory lock + upsert)",
    "page": f"Page of {PAGE} rows (of {REPOSITORIES:,})",
}
DRIVERS = {
    "psycopg": "psycopg (prepared)",
    "psycopg-noprep": "psycopg (prepare_threshold=None)",
    "asyncpg": "asyncpg",
    "asyncpg-noreset": "asyncpg (no reset)",
}

POINT = "SELECT digest FROM tags WHERE repository={0} AND tag={1}"
LOCK = "SELECT pg_advisory_xact_lock(1)"
UPSERT = (
    "INSERT INTO tags (repository, tag, digest) VALUES ({0}, {1}, {2})"
    " ON CONFLICT (repository, tag) DO UPDATE SET digest = EXCLUDED.digest"
)
PAGE_SQL = "SELECT name FROM repositories WHERE name > {0} ORDER BY name LIMIT " + str(PAGE)


def psycopg_sql(template: str) -> str:
    return template.format(*["%s"] * 3)


def asyncpg_sql(template: str) -> str:
    return template.format("$1", "$2", "$3")


def repository_name(number: int) -> str:
    return f"library/repo-{number:06d}"


def create_schema(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE repositories (name text COLLATE \"C\" PRIMARY KEY)")
        conn.execute(
            "CREATE TABLE tags (repository text COLLATE \"C\", tag text COLLATE \"C\","
            " digest text NOT NULL, PRIMARY KEY (repository, tag))"
        )
        conn.execute(
            "INSERT INTO repositories SELECT 'library/repo-' || lpad(n::text, 6, '0')"
            " FROM generate_series(0, %s) AS n",
            (REPOSITORIES - 1,),
        )
        conn.execute(
            "INSERT INTO tags SELECT 'library/repo-' || lpad(r::text, 6, '0'), 'v' || t,"
            " 'sha256:' || md5(r::text || '/' || t::text) || md5(t::text || '/' || r::text)"
            " FROM generate_series(0, %s) AS r, generate_series(0, %s) AS t",
            (TAGGED_REPOSITORIES - 1, TAGS_PER_REPOSITORY - 1),
        )
        conn.execute("VACUUM ANALYZE")


def random_tag() -> tuple[str, str]:
    repository = repository_name(random.randrange(TAGGED_REPOSITORIES))
    return repository, f"v{random.randrange(TAGS_PER_REPOSITORY)}"


def random_page_start() -> str:
    return repository_name(random.randrange(REPOSITORIES - PAGE))


def new_digest() -> str:
    return "sha256:" + random.randbytes(32).hex()


Operation = Callable[[], Awaitable[None]]


class Driver:
    """One driver's pool and the three operations on it."""

    name: str

    async def close(self) -> None:
        raise NotImplementedError

    def operation(self, shape: str) -> Operation:
        raise NotImplementedError


class PsycopgDriver(Driver):
    def __init__(self, name: str, pool: AsyncConnectionPool[Any]) -> None:
        self.name, self.pool = name, pool

    @classmethod
    async def open(cls, name: str, dsn: str, size: int, prepare: bool) -> PsycopgDriver:
        # autocommit: a read is one round trip, as with asyncpg; writes open a transaction.
        kwargs: dict[str, Any] = {"autocommit": True}
        if not prepare:
            kwargs["prepare_threshold"] = None
        pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            dsn, min_size=size, max_size=size, kwargs=kwargs, open=False
        )
        await pool.open(wait=True, timeout=60)
        return cls(name, pool)

    async def close(self) -> None:
        await self.pool.close()

    def operation(self, shape: str) -> Operation:
        pool = self.pool
        point, upsert, page = psycopg_sql(POINT), psycopg_sql(UPSERT), psycopg_sql(PAGE_SQL)

        async def point_select() -> None:
            async with pool.connection() as conn:
                cursor = await conn.execute(point, random_tag())
                row = await cursor.fetchone()
                assert row is not None

        async def write() -> None:
            repository, tag = random_tag()
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(LOCK)
                await conn.execute(upsert, (repository, tag, new_digest()))

        async def page_of_names() -> None:
            async with pool.connection() as conn:
                cursor = await conn.execute(page, (random_page_start(),))
                rows = await cursor.fetchall()
                assert len(rows) == PAGE

        return {"point": point_select, "write": write, "page": page_of_names}[shape]


async def keep_session(conn: asyncpg.Connection) -> None:
    """A pool `reset` that sends nothing: the index keeps no session state."""


class AsyncpgDriver(Driver):
    def __init__(self, name: str, pool: asyncpg.Pool) -> None:
        self.name, self.pool = name, pool

    @classmethod
    async def open(cls, name: str, dsn: str, size: int, reset: bool) -> AsyncpgDriver:
        options: dict[str, Any] = {} if reset else {"reset": keep_session}
        pool = await asyncpg.create_pool(dsn, min_size=size, max_size=size, **options)
        return cls(name, pool)

    async def close(self) -> None:
        await self.pool.close()

    def operation(self, shape: str) -> Operation:
        pool = self.pool
        point, upsert, page = asyncpg_sql(POINT), asyncpg_sql(UPSERT), asyncpg_sql(PAGE_SQL)

        async def point_select() -> None:
            async with pool.acquire() as conn:
                digest = await conn.fetchval(point, *random_tag())
                assert digest is not None

        async def write() -> None:
            repository, tag = random_tag()
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(LOCK)
                await conn.execute(upsert, repository, tag, new_digest())

        async def page_of_names() -> None:
            async with pool.acquire() as conn:
                rows = await conn.fetch(page, random_page_start())
                assert len(rows) == PAGE

        return {"point": point_select, "write": write, "page": page_of_names}[shape]


async def open_driver(name: str, dsn: str, size: int) -> Driver:
    if name.startswith("asyncpg"):
        return await AsyncpgDriver.open(name, dsn, size, reset=name == "asyncpg")
    return await PsycopgDriver.open(name, dsn, size, prepare=name == "psycopg")


@dataclass
class Sample:
    ops_per_second: float
    cpu_us_per_op: float


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(operation: Operation, tasks: int, seconds: float) -> Sample:
    """Run `operation` in a loop from `tasks` tasks for about `seconds`."""
    deadline = time.perf_counter() + seconds

    async def loop() -> int:
        done = 0
        while time.perf_counter() < deadline:
            await operation()
            done += 1
        return done

    cpu, start = cpu_seconds(), time.perf_counter()
    counts = await asyncio.gather(*(loop() for _ in range(tasks)))
    elapsed, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    ops = sum(counts)
    return Sample(ops / elapsed, cpu / ops * 1e6)


async def benchmark(dsn: str, rounds: int, seconds: float) -> dict[tuple[str, int, str], Sample]:
    samples: dict[tuple[str, int, str], list[Sample]] = {}
    for tasks in CONCURRENCIES:
        drivers = [await open_driver(name, dsn, tasks) for name in DRIVERS]
        try:
            for driver in drivers:  # warm up: connections, prepared statements, caches
                for shape in SHAPES:
                    await measure(driver.operation(shape), tasks, min(seconds, 0.3))
            for round_no in range(rounds):
                order = drivers[round_no % len(drivers):] + drivers[: round_no % len(drivers)]
                for driver in order:
                    for shape in SHAPES:
                        sample = await measure(driver.operation(shape), tasks, seconds)
                        samples.setdefault((driver.name, tasks, shape), []).append(sample)
                print(f"  {tasks} task(s): round {round_no + 1}/{rounds} done", file=sys.stderr)
        finally:
            for driver in drivers:
                await driver.close()
    return {
        key: Sample(
            statistics.median(s.ops_per_second for s in runs),
            statistics.median(s.cpu_us_per_op for s in runs),
        )
        for key, runs in samples.items()
    }


def table(results: dict[tuple[str, int, str], Sample]) -> str:
    names = list(DRIVERS)
    ratios = (
        ("asyncpg / psycopg", "asyncpg", "psycopg"),
        ("asyncpg (no reset) / psycopg", "asyncpg-noreset", "psycopg"),
        ("psycopg prepared / unprepared", "psycopg", "psycopg-noprep"),
    )
    lines = [
        "| operation | tasks | "
        + " | ".join(DRIVERS[n] for n in names)
        + " | "
        + " | ".join(title for title, _, _ in ratios)
        + " |",
        "| --- | ---: |" + " ---: |" * (len(names) + len(ratios)),
    ]
    cpu_lines = [
        "| operation | tasks | " + " | ".join(DRIVERS[n] for n in names) + " |",
        "| --- | ---: |" + " ---: |" * len(names),
    ]
    for shape, title in SHAPES.items():
        for tasks in CONCURRENCIES:
            row = {n: results[(n, tasks, shape)] for n in names}
            lines.append(
                f"| {title} | {tasks} | "
                + " | ".join(f"{row[n].ops_per_second:,.0f}" for n in names)
                + " | "
                + " | ".join(
                    f"{row[a].ops_per_second / row[b].ops_per_second:.2f}" for _, a, b in ratios
                )
                + " |"
            )
            cpu_lines.append(
                f"| {title} | {tasks} | "
                + " | ".join(f"{row[n].cpu_us_per_op:,.0f}" for n in names)
                + " |"
            )
    return (
        "Operations per second:\n\n"
        + "\n".join(lines)
        + "\n\nClient CPU time per operation (µs, the benchmark process):\n\n"
        + "\n".join(cpu_lines)
    )


@contextmanager
def server_for(dsn: str | None) -> Iterator[PostgresServer]:
    if dsn:
        with external_postgres(dsn) as server:
            yield server
        return
    if find_pg_bindir() is None:
        sys.exit("PostgreSQL is not installed (initdb, pg_ctl, postgres); or give --dsn")
    with run_postgres() as server:
        yield server


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--dsn", default=os.environ.get(EXTERNAL_ENV) or None,
                        help=f"an existing server (default: ${EXTERNAL_ENV}, else a private one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=0.5, help="length of one measurement")
    args = parser.parse_args()
    with server_for(args.dsn) as server:
        dsn = server.new_database()
        started = time.perf_counter()
        create_schema(dsn)
        print(f"schema and {REPOSITORIES:,} rows in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
        results = uvloop.run(benchmark(dsn, args.rounds, args.seconds))
    print(
        f"psycopg {psycopg.__version__} (libpq {psycopg.pq.version()}, {psycopg.pq.__impl__}), "
        f"asyncpg {asyncpg.__version__}, uvloop {version('uvloop')}, "
        f"Python {sys.version.split()[0]}; medians of {args.rounds} runs of {args.seconds} s\n"
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
