"""Editing the htpasswd file while the registry serves: `htpasswd` truncates the file and
writes it again in place, so a reader can find it empty or cut short. Valid users must never
be refused (nor throttled) because of that, and a finished edit must still take effect."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningRegistry, require_tool, run_registry
from tests.support.users import htpasswd_with_alice


@pytest.fixture
def users(tmp_path: Path) -> Path:
    return htpasswd_with_alice(tmp_path)


@pytest.fixture
def served(tmp_path: Path, users: Path) -> Iterator[RunningRegistry]:
    config = {"http": {"workers": 2},
              "auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)}}}
    with run_registry(tmp_path, config=config) as running:
        yield running


def htpasswd(users: Path, user: str, password: str) -> None:
    subprocess.run([require_tool("htpasswd"), "-Bb", "-C", "5", str(users), user, password],
                   check=True, capture_output=True)


def rewrite_in_place(users: Path, pause: float) -> None:
    """Truncate the file, and write it back only after `pause`, as any in-place editor may."""
    content = users.read_bytes()
    with users.open("wb") as handle:
        handle.flush()
        time.sleep(pause)
        handle.write(content)


def wait_for_status(url: str, auth: tuple[str, str], status: int, timeout: float = 30
                    ) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(url + "/v2/", auth=auth).status_code == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"{auth[0]} did not get {status} within {timeout} s")


def test_valid_user_is_never_refused_while_the_file_is_edited(served: RunningRegistry,
                                                             users: Path) -> None:
    statuses: Counter[int] = Counter()
    done = threading.Event()

    def client() -> None:
        with served.client(auth=("alice", "wonderland")) as http:
            while not done.is_set():
                statuses[http.get("/v2/").status_code] += 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for round_ in range(12):
            htpasswd(users, f"user{round_}", f"password{round_}")
            rewrite_in_place(users, pause=0.2)
    finally:
        done.set()
        for thread in threads:
            thread.join(timeout=60)
    assert statuses[200] > 0, statuses
    assert set(statuses) == {200}, statuses
    # The edits took effect once the file was whole again.
    wait_for_status(served.url, ("user11", "password11"), 200)


def test_empty_or_torn_file_keeps_the_last_users(tmp_path: Path, users: Path) -> None:
    # One worker: with more, one still starting when the file is broken has no users yet.
    config = {"http": {"workers": 1},
              "auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)}}}
    with run_registry(tmp_path, config=config) as served:
        check_broken_files_keep_users(served, users)


def check_broken_files_keep_users(served: RunningRegistry, users: Path) -> None:
    good = users.read_text()
    alice = ("alice", "wonderland")
    # A copy cut short: torn inside a name or a hash, including the first characters of a
    # bcrypt hash, which on their own do not say which scheme the line is.
    other = good.splitlines()[0].replace("alice:", "bob:", 1).encode() + b"\n"
    cut = [b"alice:$2y$05$cut-short", b"ali"] + [other + b"alice" + tail for tail in (
        b":", b":$", b":$2", b":$2y", b":$2y$", b":$2y$05$abc")]
    for broken in (b"", b"\n", *cut, b"\xff\xfe garbage"):
        users.write_bytes(broken)
        time.sleep(1.5)  # long enough for the server to take a settled file
        statuses = [httpx.get(served.url + "/v2/", auth=alice).status_code for _ in range(3)]
        assert statuses == [200] * 3, (broken, statuses)
    users.write_text(good)
    htpasswd(users, "carol", "reader")
    wait_for_status(served.url, ("carol", "reader"), 200)
    assert httpx.get(served.url + "/v2/", auth=alice).status_code == 200


def test_a_server_started_during_an_edit_waits_for_the_users(tmp_path: Path, users: Path
                                                            ) -> None:
    """A server (or a worker) that starts while the file is truncated half-way through an
    in-place edit must not take it as a file without users."""
    content = users.read_bytes()
    users.write_bytes(b"")
    # An mtime ahead of the clock: the file looks changed just now for as long as the server
    # takes to start, however slowly this machine runs.
    ahead = time.time() + 60
    os.utime(users, (ahead, ahead))
    written = threading.Event()

    def finish_the_edit() -> None:
        time.sleep(3)  # the server starts meanwhile, and finds the file empty
        with users.open("r+b") as handle:
            handle.write(content)
        written.set()

    writer = threading.Thread(target=finish_the_edit)
    writer.start()
    config = {"http": {"workers": 1},
              "auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)}}}
    try:
        with run_registry(tmp_path, config=config) as served, \
                served.client(auth=("alice", "wonderland")) as http:
            statuses: Counter[int] = Counter()
            deadline = None
            while deadline is None or time.monotonic() < deadline:
                statuses[http.get("/v2/").status_code] += 1
                if deadline is None and written.is_set():
                    deadline = time.monotonic() + 1.5  # past the settling time of an edit
            assert set(statuses) == {200}, statuses
    finally:
        writer.join(timeout=60)


def test_a_file_without_users_takes_an_edit_at_once(tmp_path: Path, users: Path) -> None:
    """With no users read yet there is nothing an edit could take away: the first users
    written to the file count at once, without waiting for the file to settle."""
    content = users.read_bytes()
    users.write_bytes(b"")
    past = time.time() - 60
    os.utime(users, (past, past))  # empty for long: not an edit under way
    config = {"http": {"workers": 1},
              "auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)}}}
    with run_registry(tmp_path, config=config) as served, \
            served.client(auth=("alice", "wonderland")) as http:
        assert http.get("/v2/").status_code == 401
        with users.open("r+b") as handle:  # in place, as htpasswd does
            handle.write(content)
        assert http.get("/v2/").status_code == 200
