"""`dockyard passwd` rewrites the htpasswd file atomically and keeps its mode and owner; a
file it creates is readable by its owner alone."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.auth.test_htpasswd import passwd
from tests.support.server import IN_CI, require_tool


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def users(tmp_path: Path) -> Path:
    path = tmp_path / "htpasswd"
    subprocess.run([require_tool("htpasswd"), "-Bbc", str(path), "alice", "wonderland"],
                   check=True, capture_output=True)
    return path


@pytest.mark.parametrize("kept", [0o600, 0o640, 0o644, 0o400])
def test_rewrite_keeps_the_mode(users: Path, kept: int) -> None:
    users.chmod(kept)
    before = users.stat().st_ino
    result = passwd(users, "bob", "builder")
    assert result.returncode == 0, result.stderr
    assert mode(users) == kept
    assert users.stat().st_ino != before  # a new file renamed over the old one
    assert [line.partition(":")[0] for line in users.read_text().splitlines()] \
        == ["alice", "bob"]
    assert sorted(path.name for path in users.parent.iterdir()) == ["htpasswd"]


@pytest.mark.skipif(os.geteuid() != 0 and not IN_CI,
                    reason="giving a file to another user needs root")
def test_rewrite_keeps_the_owner(users: Path) -> None:
    os.chown(users, 4321, 8765)
    users.chmod(0o640)
    result = passwd(users, "alice", "changed")
    assert result.returncode == 0, result.stderr
    status = users.stat()
    assert (status.st_uid, status.st_gid) == (4321, 8765)
    assert mode(users) == 0o640


def test_new_file_is_for_its_owner_alone(tmp_path: Path) -> None:
    path = tmp_path / "fresh"
    result = passwd(path, "alice", "wonderland")
    assert result.returncode == 0, result.stderr
    assert mode(path) == 0o600
    assert path.read_text().startswith("alice:$2b$")


def test_a_symlinked_file_is_rewritten_where_it_lives(users: Path, tmp_path: Path) -> None:
    users.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(users)
    result = passwd(link, "bob", "builder")
    assert result.returncode == 0, result.stderr
    assert link.is_symlink()
    assert "bob:" in users.read_text()
    assert mode(users) == 0o600
