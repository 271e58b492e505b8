"""Editing the htpasswd file while the registry serves: `htpasswd` truncates the file and
writes it again in place, so a reader can find it empty or cut short. Valid users must never
be refused (nor throttled) because of that, and a finished edit must still take effect."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningRegistry, require_tool, run_registry


@pytest.fixture
def users(tmp_path: Path) -> Path:
    htpasswd = require_tool("htpasswd")
    path = tmp_path / "htpasswd"
    subprocess.run([htpasswd, "-Bbc", str(path), "alice", "wonderland"], check=True,
                   capture_output=True)
    return path


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
    for broken in (b"", b"\n", b"alice:$2y$05$cut-short", b"ali", b"\xff\xfe garbage"):
        users.write_bytes(broken)
        time.sleep(1.5)  # long enough for the server to take a settled file
        statuses = [httpx.get(served.url + "/v2/", auth=alice).status_code for _ in range(3)]
        assert statuses == [200] * 3, (broken, statuses)
    users.write_text(good)
    htpasswd(users, "carol", "reader")
    wait_for_status(served.url, ("carol", "reader"), 200)
    assert httpx.get(served.url + "/v2/", auth=alice).status_code == 200
