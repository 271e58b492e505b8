"""Spool files shared by the worker processes of one host: the worker that claims a
blob's spool fetches it, the others follow the file as it grows.

A spool is named after the repository and the digest. It is claimed by linking a freshly
made, already locked file to that name (atomic: one worker wins), and its claimant holds
an exclusive `flock` on it while it fetches. A worker that opens the spool and can take a
shared lock knows the claimant has gone (finished, failed or died): what the file holds
is all it will ever hold. The blob's size, once the upstream has said it, is in a small
file beside the spool."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
import uuid
from pathlib import Path

from dockyard.registry.reference import Digest

SIZE_SUFFIX = ".size"


def spool_path(directory: Path, repository: str, digest: Digest) -> Path:
    """The spool of a repository's blob; the name hashed, to be a file name."""
    name = hashlib.sha256(repository.encode()).hexdigest()[:16]
    return directory / f"{name}-{digest.algorithm}-{digest.hex}"


def claim(path: Path) -> int | None:
    """The spool's descriptor, open for writing and exclusively locked, for the worker
    that is to fetch; None when another worker holds it. A spool left by a worker that
    died (no lock on it) is removed and claimed."""
    for _ in range(3):
        candidate = path.with_name(f"{path.name}.{uuid.uuid4().hex}.claim")
        fd = os.open(candidate, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.link(candidate, path)
        except FileExistsError:
            os.close(fd)
            if not _remove_if_abandoned(path):
                return None
            continue
        except BaseException:
            os.close(fd)
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(candidate)
        return fd
    return None


def _remove_if_abandoned(path: Path) -> bool:
    """Remove a spool nobody holds (its worker died); False if one does (or it is gone,
    which a new claim settles)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return True
    try:
        if not claimant_gone(fd):
            return False
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                os.unlink(path)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(str(path) + SIZE_SUFFIX)
        return True
    finally:
        os.close(fd)


def claimant_gone(fd: int) -> bool:
    """Whether no worker holds the spool open for fetching any more."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def write_size(path: Path, size: int | None) -> None:
    """Tell the followers how big the blob is ("" : the upstream did not say)."""
    temporary = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text("" if size is None else str(size))
    os.replace(temporary, str(path) + SIZE_SUFFIX)


def read_size(path: Path) -> tuple[bool, int | None]:
    """(known, size): whether the claimant has written the size yet, and the size."""
    try:
        text = Path(str(path) + SIZE_SUFFIX).read_text().strip()
    except FileNotFoundError:
        return False, None
    return True, int(text) if text else None


def release(path: Path, fd: int) -> None:
    """The claimant's end: the spool goes (followers keep their open descriptors), then
    the lock, so a follower that sees the lock free finds the blob stored if it was."""
    for leftover in (str(path) + SIZE_SUFFIX, str(path)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(leftover)
    os.close(fd)


def sweep_abandoned(directory: Path, older_than: float = 60.0) -> int:
    """Remove what fetches of workers that died left behind (spools nobody holds, their
    size files and half-made claims), leaving every spool a worker holds. Returns how many
    files went."""
    removed = 0
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return 0
    now = time.time()
    for entry in entries:
        name = entry.name
        if "." not in name:
            removed += _remove_if_abandoned(entry) and not entry.exists()
            continue
        with contextlib.suppress(FileNotFoundError):
            if name.endswith(SIZE_SUFFIX) and not Path(str(entry)[:-len(SIZE_SUFFIX)]).exists():
                entry.unlink()
                removed += 1
            elif now - entry.stat().st_mtime > older_than and not name.endswith(SIZE_SUFFIX):
                entry.unlink()  # a claim or a size being written, by a worker long gone
                removed += 1
    return removed
