"""The failed-login throttle of several hosts sharing one PostgreSQL database: a guesser
spreading its attempts over the hosts behind a load balancer gets no more checks than
against one host, and a block set on one host holds on every other.

Each host here is a registry with a local directory of its own (where a host keeps its
files, and where the throttle's SQLite file would be without the database) and the same
`database` settings."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from itertools import cycle
from pathlib import Path

import httpx

from tests.support.oci import error_codes
from tests.support.postgres import PostgresServer
from tests.support.server import RunningRegistry, require_tool, run_registry


@contextlib.contextmanager
def two_hosts(tmp_path: Path, postgres_server: PostgresServer,
              throttle: dict[str, object] | None = None
              ) -> Iterator[tuple[RunningRegistry, RunningRegistry]]:
    htpasswd = require_tool("htpasswd")
    users = tmp_path / "htpasswd"
    subprocess.run([htpasswd, "-Bbc", str(users), "alice", "wonderland"], check=True,
                   capture_output=True)
    subprocess.run([htpasswd, "-Bb", str(users), "bob", "builder"], check=True,
                   capture_output=True)
    dsn = postgres_server.index_database(f"throttle_{uuid.uuid4().hex[:12]}")
    config = {"http": {"workers": 1},
              "database": {"enabled": True, "dsn": dsn},
              "auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)},
                       "throttle": throttle or {}}}
    with run_registry(tmp_path, root=tmp_path / "host-a", config=config) as first, \
            run_registry(tmp_path, root=tmp_path / "host-b", config=config) as second:
        yield first, second


def login(running: RunningRegistry, user: str, password: str) -> int:
    return httpx.get(running.url + "/v2/", auth=(user, password), timeout=60).status_code


def test_failures_on_every_host_count_together(tmp_path: Path,
                                               postgres_server: PostgresServer) -> None:
    with two_hosts(tmp_path, postgres_server, {"peraccount": 4, "perclient": 6}) as hosts:
        first, second = hosts
        alternating = cycle(hosts)
        guesses = [login(next(alternating), "alice", f"guess-{n}") for n in range(4)]
        assert guesses == [401] * 4
        # Four failures in all, two on each host: the limit is reached on both.
        assert login(first, "alice", "guess-4") == 429
        refused = httpx.get(second.url + "/v2/", auth=("alice", "wonderland"), timeout=60)
        assert refused.status_code == 429
        assert error_codes(refused) == ["TOOMANYREQUESTS"]
        assert refused.headers["Retry-After"] == "60"
        # The client's limit over all accounts counts both hosts too: alice's four
        # failures and two of bob's reach it, wherever they were made.
        assert login(second, "bob", "typo-1") == 401
        assert login(first, "bob", "typo-2") == 401
        assert login(second, "bob", "builder") == 429
        # The block is logged once, by the host that set it, not once per host.
        logs = first.logs() + second.logs()
        assert logs.count("login throttled") == 2, logs  # alice's block, then the client's


def test_a_block_set_on_one_host_holds_on_the_other(tmp_path: Path,
                                                    postgres_server: PostgresServer) -> None:
    with two_hosts(tmp_path, postgres_server, {"peraccount": 3}) as (first, second):
        assert [login(first, "alice", f"guess-{n}") for n in range(3)] == [401] * 3
        assert login(first, "alice", "wonderland") == 429
        # The other host has not seen one of these failures, and refuses her all the same.
        assert login(second, "alice", "wonderland") == 429
        # Another account from the same address is not locked out, on either host.
        assert login(second, "bob", "builder") == 200
        assert login(first, "bob", "builder") == 200


def test_right_passwords_pass_on_every_host_and_are_not_failures(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    with two_hosts(tmp_path, postgres_server, {"peraccount": 3}) as (first, second):
        assert [login(host, "alice", "wonderland") for host in (first, second) * 5] == \
            [200] * 10
        # None of them counted: the whole limit is left for mistakes, on both hosts.
        assert [login(host, "bob", "typo") for host in (first, second, first)] == [401] * 3
        assert login(second, "bob", "builder") == 429


def test_failures_are_forgotten_after_the_window_on_every_host(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    with two_hosts(tmp_path, postgres_server, {"peraccount": 2, "window": "3s"}) as hosts:
        first, second = hosts
        assert [login(first, "alice", "a"), login(second, "alice", "b")] == [401, 401]
        assert login(first, "alice", "wonderland") == 429
        time.sleep(5)  # well past the window
        assert login(second, "alice", "wonderland") == 200
        assert login(first, "alice", "wonderland") == 200


async def parallel_logins(urls: list[str], passwords: list[str]) -> list[int]:
    """Each guess on a connection of its own, all sent at once, spread over the hosts."""
    limits = httpx.Limits(max_connections=len(passwords), max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        responses = await asyncio.gather(*(
            client.get(url + "/v2/", auth=("alice", password))
            for url, password in zip(cycle(urls), passwords, strict=False)))
    return [response.status_code for response in responses]


def test_parallel_guesses_on_every_host_get_no_more_checks_than_the_limit(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    with two_hosts(tmp_path, postgres_server, {"peraccount": 5}) as (first, second):
        guesses = [f"guess-{n}" for n in range(120)]
        statuses = Counter(asyncio.run(parallel_logins([first.url, second.url], guesses)))
        # A 401 is a password really checked, on either host; the rest were refused.
        assert statuses[401] <= 5, statuses
        assert statuses[429] == 120 - statuses[401], statuses
