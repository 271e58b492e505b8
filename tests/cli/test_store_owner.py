"""Commands run as root on a store another user owns must not leave root-owned files behind
(after which the registry's own service user cannot start), and permission problems are
reported in one line, not as tracebacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.oci import make_image, push_image
from tests.support.server import IN_CI, run_registry

SERVICE_UID = 65534  # nobody

pytestmark = pytest.mark.skipif(os.geteuid() != 0 and not IN_CI,
                                reason="needs root to own files as others")


def dockyard(*args: str, as_service_user: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dockyard", *args]
    if as_service_user:
        setpriv = shutil.which("setpriv")
        assert setpriv is not None, "setpriv (util-linux) is needed"
        command = [setpriv, f"--reuid={SERVICE_UID}", f"--regid={SERVICE_UID}",
                   "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path in the store with its owner and modification time."""
    found = {}
    for directory, names, files in os.walk(root):
        for name in [*names, *files]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            found[os.path.relpath(path, root)] = (info.st_uid, info.st_mtime_ns)
    return found


def chown_tree(root: Path, uid: int) -> None:
    for directory, names, files in os.walk(root):
        os.chown(directory, uid, uid)
        for name in [*names, *files]:
            os.chown(os.path.join(directory, name), uid, uid, follow_symlinks=False)


@pytest.fixture
def service_store() -> Iterator[tuple[Path, Path]]:
    """A store written by dockyard, then handed to the service user, with its config; in
    a directory the service user can reach (pytest's own are private to root)."""
    base = Path(tempfile.mkdtemp(prefix="dockyard-owner-"))
    try:
        base.chmod(0o755)
        root = base / "store"
        with run_registry(base, root=root) as running, running.client() as client:
            push_image(client, "owned/app", "v1", make_image())
            config = running.config_path
        config.chmod(0o644)
        chown_tree(root, SERVICE_UID)
        yield root, config
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_dry_run_as_root_changes_nothing(service_store: tuple[Path, Path]) -> None:
    root, config = service_store
    shutil.rmtree(root / "dockyard")  # no index yet: a dry run must not create one
    before = tree(root)
    result = dockyard("garbage-collect", "--dry-run", str(config))
    assert result.returncode == 0, result.stderr
    assert tree(root) == before


def test_writing_commands_as_root_refuse_a_store_another_user_owns(
        service_store: tuple[Path, Path]) -> None:
    root, config = service_store
    before = tree(root)
    for command in (["garbage-collect"], ["index", "rebuild"], ["fsck", "--quarantine"],
                    ["serve"]):
        result = dockyard(*command, str(config))
        assert result.returncode == 2 if command[0] != "serve" else result.returncode == 1, \
            (command, result.returncode, result.stderr)
        assert "belongs to nobody" in result.stderr and "sudo -u nobody" in result.stderr
        assert "Traceback" not in result.stderr
    assert tree(root) == before


def test_serve_names_an_index_it_cannot_write(service_store: tuple[Path, Path]) -> None:
    root, config = service_store
    # What a root-run command used to leave behind.
    chown_tree(root / "dockyard", 0)
    result = dockyard("serve", str(config), as_service_user=True)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr, result.stderr
    assert f"cannot write the index {root}/dockyard/index.sqlite" in result.stderr
    assert "chown -R" in result.stderr
