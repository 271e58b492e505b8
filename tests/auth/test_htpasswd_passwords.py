"""Passwords as bcrypt sees them: only their first 72 bytes count (as in htpasswd and Go,
so distribution), and an unknown user costs a bcrypt check like a wrong password."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.test_htpasswd import passwd
from tests.support.oci import error_codes
from tests.support.server import RunningRegistry, require_tool, run_registry
from tests.support.users import htpasswd_with_alice

LONG = "correct horse battery staple " * 3 + "and then some"  # 100 characters
WIDE = "\u00e9" * 50  # 100 bytes of UTF-8
SLOW_COST = 12


@pytest.fixture
def users(tmp_path: Path) -> Path:
    htpasswd = require_tool("htpasswd")
    path = htpasswd_with_alice(tmp_path)
    subprocess.run([htpasswd, "-Bb", str(path), "long", LONG], check=True, capture_output=True)
    subprocess.run([htpasswd, "-Bb", "-C", str(SLOW_COST), str(path), "slow", "sluggish"],
                   check=True, capture_output=True)
    return path


@pytest.fixture
def served(tmp_path: Path, users: Path) -> Iterator[RunningRegistry]:
    config = {"auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)}}}
    with run_registry(tmp_path, config=config) as running:
        yield running


def status(served: RunningRegistry, user: str, password: str) -> int:
    return httpx.get(served.url + "/v2/", auth=(user, password), timeout=60).status_code


def test_long_password_made_by_htpasswd_logs_in(served: RunningRegistry) -> None:
    assert len(LONG) == 100
    assert status(served, "long", LONG) == 200
    # As htpasswd and Go's bcrypt (distribution) do, bytes past the 72nd are not looked at.
    assert status(served, "long", LONG[:72]) == 200
    assert status(served, "long", LONG[:72] + "anything else") == 200
    assert status(served, "long", "x" + LONG[1:]) == 401


def test_long_wrong_passwords_are_401_and_counted(served: RunningRegistry) -> None:
    for user in ("alice", "long", "nobody"):
        for attempt in range(3):
            response = httpx.get(served.url + "/v2/", auth=(user, f"{attempt}{LONG}"))
            assert response.status_code == 401, user
            assert error_codes(response) == ["UNAUTHORIZED"]
    for attempt in range(3, 10):
        assert status(served, "alice", f"{attempt}{WIDE}{LONG}") == 401
    assert status(served, "alice", f"x{LONG}") == 429  # the 11th failure
    assert "Traceback" not in served.logs()
    assert " 500" not in served.logs()


def test_dockyard_passwd_hashes_as_htpasswd_does(served: RunningRegistry, users: Path) -> None:
    for user, password in (("carol", LONG), ("dave", WIDE + LONG)):
        result = passwd(users, user, password)
        assert result.returncode == 0, result.stderr
        # htpasswd itself accepts the whole password against dockyard's entry.
        verified = subprocess.run([require_tool("htpasswd"), "-vb", str(users), user,
                                   password], capture_output=True, text=True)
        assert verified.returncode == 0, verified.stderr
        # A file renamed into place is read at once, unless the new file got the inode
        # number of one a worker saw before: then it looks edited in place, and is read
        # once it has been still for a second.
        assert eventually_status(served, user, password, 200)
        # Each worker reads the file on its own: the other may still be waiting its second.
        first_72_bytes = password.encode()[:72].decode(errors="ignore")
        assert eventually_status(served, user, first_72_bytes, 200)


def test_unknown_user_costs_a_bcrypt_check(served: RunningRegistry, users: Path) -> None:
    # Both measured through the server, interleaved, so a machine whose load changes
    # during the test slows both alike; the quickest of several tries is the least noisy.
    wrong_password, unknown_user = [], []
    for _ in range(5):
        wrong_password.append(timed(lambda: status(served, "slow", "wrong")))
        unknown_user.append(timed(lambda: status(served, "nobody", "wrong")))
    assert min(wrong_password) > 0.02  # else the comparison below says nothing
    # Skipping bcrypt answered an unknown user in a tenth of a wrong password's time.
    assert min(unknown_user) >= min(wrong_password) * 0.5, (unknown_user, wrong_password)


def eventually_status(served: RunningRegistry, user: str, password: str, wanted: int,
                      timeout: float = 5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if status(served, user, password) == wanted:
            return True
        time.sleep(0.5)  # few tries: a refused one may count as a failed login
    return False


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started
