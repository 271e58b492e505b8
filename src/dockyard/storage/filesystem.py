"""Filesystem driver: the same tree distribution writes under its root directory."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import stat
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from dockyard.storage.beneath import Escapes, Tree
from dockyard.storage.driver import (
    FileInfo,
    FileWriter,
    PathNotFound,
    StorageDriver,
    UnsafeWrite,
    check_path,
)

# Reads and writes this large leave the event loop for a thread; smaller ones are cheaper inline.
THREAD_THRESHOLD = 256 * 1024
# Large reads: each chunk costs a few system calls and a trip through the server's write
# path, so 4 MiB pieces keep a pull near what the socket allows.
READ_CHUNK = 4 * 1024 * 1024
# Each download holds about two pieces (one being sent, one read ahead). A download starts
# with small pieces, and they grow with what it has sent while its client keeps up (to an
# eighth of it, so a client whose kernel buffers swallowed the first megabytes and then
# stalls holds little); a client slow to take a piece is back to the smallest; and with many
# downloads at once in a process the pieces shrink so those in flight stay near this total.
# Hundreds of slow readers must not hold 8 MiB each.
READ_BUDGET = 32 * 1024 * 1024
MIN_READ_CHUNK = 256 * 1024
SLOW_READER_S = 0.05
_reading = 0  # downloads in progress in this process
_NO_WAIT = getattr(os, "RWF_NOWAIT", 0)


def _in_page_cache(fd: int, position: int) -> bool:
    """Whether the byte at `position` can be read without waiting for the disk (Linux
    preadv2 with RWF_NOWAIT; elsewhere, assume it cannot). Reads run sequentially and the
    kernel reads ahead and evicts the oldest pages first, so a chunk whose last byte is
    cached is as good as cached whole."""
    if not _NO_WAIT:
        return False
    try:
        return os.preadv(fd, [bytearray(1)], position, _NO_WAIT) == 1
    except OSError:  # EAGAIN: on disk; EOPNOTSUPP: a filesystem without the flag
        return False


# put_content writes beside its target under a name no driver path can have ("~" is never
# valid in one), so `list` hides these and nothing else: ".tmp" is a valid end of a tag or
# repository name. Names of the earlier form, "<name>.<32 hex>.tmp", are hidden too, since a
# crash may have left some behind.
_EARLIER_TEMPORARY = re.compile(r".+\.[0-9a-f]{32}\.tmp")


def _is_temporary(name: str) -> bool:
    return "~" in name or _EARLIER_TEMPORARY.fullmatch(name) is not None


# Batches of metadata operations this small cost less inline than a trip to a thread.
INLINE_BATCH = 8
# Threads a large delete is spread over: unlink and rmdir mostly wait on the disk (journal,
# freeing and discarding blocks), and many of those waits overlap.
DELETE_THREADS = max(3, min(16, 3 * (os.cpu_count() or 1)))
_delete_pool: ThreadPoolExecutor | None = None


def _delete_executor() -> ThreadPoolExecutor:
    global _delete_pool
    if _delete_pool is None:
        _delete_pool = ThreadPoolExecutor(DELETE_THREADS, thread_name_prefix="dockyard-delete")
    return _delete_pool


async def _on_delete_threads(work: Callable[[Sequence[str]], None],
                             paths: Sequence[str]) -> None:
    """Run `work` over `paths` split in interleaved shares, one per delete thread:
    neighbours in a sorted batch often share a parent directory, whose lock the threads
    would otherwise queue on."""
    loop = asyncio.get_running_loop()
    executor = _delete_executor()
    shares = [paths[start::DELETE_THREADS] for start in range(DELETE_THREADS)]
    await asyncio.gather(*(loop.run_in_executor(executor, work, share)
                           for share in shares if share))


class FilesystemWriter(FileWriter):
    def __init__(self, fd: int, size: int) -> None:
        self._fd = fd
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def _check_open(self) -> None:
        if self._fd < 0:
            raise ValueError("write to a closed FileWriter")

    async def write(self, data: bytes) -> None:
        self._check_open()
        if len(data) >= THREAD_THRESHOLD:
            await asyncio.to_thread(self._write_all, data)
        else:
            self._write_all(data)
        self._size += len(data)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    async def truncate(self, size: int) -> None:
        self._check_open()
        if size < 0:
            raise ValueError(f"negative size: {size}")
        if size < self._size:  # ftruncate would grow a file with zeros nobody wrote
            os.ftruncate(self._fd, size)
            self._size = size

    async def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def commit(self) -> None:
        """Nothing to assemble: every write already went to the file itself."""
        self._check_open()
        await self.close()


class FilesystemDriver(StorageDriver):
    name = "filesystem"

    def __init__(self, root: str) -> None:
        os.makedirs(root, exist_ok=True)
        self.tree = Tree(root)
        self.root = self.tree.root

    def _full(self, path: str) -> str:
        return self.root + check_path(path)

    def _open(self, path: str, flags: int) -> int:
        """A descriptor for `path`; a path whose resolution leaves the root (a symlink
        at any depth pointing elsewhere) reads as missing."""
        try:
            relative = "" if path == "/" else check_path(path).lstrip("/")
            return self.tree.open(relative, flags)
        except (FileNotFoundError, NotADirectoryError, Escapes):
            raise PathNotFound(path) from None
        except OSError as error:
            if error.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
                raise PathNotFound(path) from None
            raise

    async def get_content(self, path: str) -> bytes:
        # Small files (links, manifests) are never symlinks of their own in a store.
        fd = self._open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            file = os.fdopen(fd, "rb")
        except IsADirectoryError:
            os.close(fd)  # fdopen leaves a descriptor it was given open when it fails
            raise PathNotFound(path) from None
        with file:
            return file.read()

    def _parent(self, path: str, create: bool) -> tuple[int, str]:
        """A descriptor of the directory holding `path`, opened beneath the root (made,
        with its missing parents, if `create`), and the name of `path` in it. Writes
        create and rename relative to it, so they happen where reads would look: a
        symlink leading out of the store refuses the write."""
        parent, _, name = check_path(path).lstrip("/").rpartition("/")
        try:
            return self.tree.directory(parent, create), name
        except Escapes:
            raise UnsafeWrite(path, "a symlink on its path leads out of the store") from None

    @staticmethod
    def _create(name: str, flags: int, mode: int, dir_fd: int, path: str) -> int:
        """Open (creating) `name` in `dir_fd`, never through a symlink in its place."""
        try:
            return os.open(name, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                           dir_fd=dir_fd)
        except OSError as error:
            if error.errno == errno.ELOOP:
                raise UnsafeWrite(path, "it is a symlink") from None
            raise

    async def put_content(self, path: str, data: bytes) -> None:
        dir_fd, name = self._parent(path, create=True)
        try:
            # Write beside the target and rename over it: a crash never leaves a torn file.
            temporary = f"{name}~{uuid.uuid4().hex}.tmp"
            try:
                fd = self._create(temporary, os.O_WRONLY | os.O_EXCL, 0o666, dir_fd, path)
                with open(fd, "wb") as file:
                    file.write(data)
                os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary, dir_fd=dir_fd)
                raise
        finally:
            os.close(dir_fd)

    async def free_space(self) -> int | None:
        usage = os.statvfs(self.root)
        return usage.f_bavail * usage.f_frsize

    async def stat(self, path: str) -> FileInfo | None:
        try:
            fd = self._open(path, os.O_PATH | os.O_NOFOLLOW)
        except PathNotFound:
            return None
        try:
            result = os.fstat(fd)  # of the link itself, if the last component is one
        finally:
            os.close(fd)
        if stat.S_ISLNK(result.st_mode):
            return None
        is_dir = stat.S_ISDIR(result.st_mode)
        return FileInfo(path, 0 if is_dir else result.st_size, result.st_mtime, is_dir)

    async def list(self, path: str) -> list[str]:
        fd = self._open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            return [name for name in os.listdir(fd) if not _is_temporary(name)]
        finally:
            os.close(fd)

    async def move(self, source: str, destination: str) -> None:
        try:
            # A source reached through a link out of the store reads as missing.
            source_fd, source_name = self._parent(source, create=False)
        except (UnsafeWrite, FileNotFoundError, NotADirectoryError):
            raise PathNotFound(source) from None
        try:
            destination_fd, destination_name = self._parent(destination, create=True)
            try:
                os.replace(source_name, destination_name,
                           src_dir_fd=source_fd, dst_dir_fd=destination_fd)
            except FileNotFoundError:
                raise PathNotFound(source) from None
            finally:
                os.close(destination_fd)
        finally:
            os.close(source_fd)

    async def delete(self, path: str) -> None:
        full = self._full(path)
        try:
            info = os.lstat(full) if _ParentCheck(self.root)(full) else None
        except (FileNotFoundError, NotADirectoryError):
            info = None
        if info is None:  # missing, or reached through a link out of the store
            raise PathNotFound(path)
        if not stat.S_ISDIR(info.st_mode):
            _remove_entry(full, is_dir=False)
            return
        # Most directories deleted are a blob's or a link's (one file): inline is cheaper
        # than a thread; bigger trees go to a thread.
        with os.scandir(full) as scan:
            entries = list(scan)
        if len(entries) <= 2 and not any(entry.is_dir(follow_symlinks=False)
                                         for entry in entries):
            _remove_entry(full)
        else:
            await asyncio.to_thread(_remove_entry, full)

    async def stat_many(self, paths: Sequence[str]) -> Sequence[FileInfo | None]:
        if len(paths) <= INLINE_BATCH:
            return self._stat_many(paths)
        return await asyncio.to_thread(self._stat_many, paths)

    def _stat_many(self, paths: Sequence[str]) -> Sequence[FileInfo | None]:
        inside = _ParentCheck(self.root)
        found: list[FileInfo | None] = []
        for path in paths:
            full = self._full(path)
            try:
                result = os.lstat(full) if inside(full) else None
            except (FileNotFoundError, NotADirectoryError):
                result = None
            if result is None or stat.S_ISLNK(result.st_mode):
                found.append(None)
                continue
            is_dir = stat.S_ISDIR(result.st_mode)
            found.append(FileInfo(path, 0 if is_dir else result.st_size, result.st_mtime, is_dir))
        return found

    async def delete_many(self, paths: Sequence[str]) -> None:
        if len(paths) <= INLINE_BATCH:
            self._delete_many(paths)
            return
        await _on_delete_threads(self._delete_many, paths)

    def _delete_many(self, paths: Sequence[str]) -> None:
        inside = _ParentCheck(self.root)
        for path in paths:
            full = self._full(path)
            if inside(full):
                _remove_entry(full)

    async def prune_many(self, paths: Sequence[str], stop: str) -> None:
        if len(paths) <= INLINE_BATCH:
            self._prune_many(paths, stop)
            return
        # Siblings pruned at once race for their parent: whichever empties it last removes it.
        await _on_delete_threads(lambda share: self._prune_many(share, stop), paths)

    def _prune_many(self, paths: Sequence[str], stop: str) -> None:
        inside = _ParentCheck(self.root)
        for path in paths:
            while path.startswith(stop.rstrip("/") + "/"):
                full = self._full(path)
                if not inside(full):
                    break
                try:
                    os.rmdir(full)  # fails, and so stops, at the first directory with entries
                except FileNotFoundError:
                    pass
                except OSError:
                    break
                path = path.rsplit("/", 1)[0]

    async def writer(self, path: str) -> FileWriter:
        dir_fd, name = self._parent(path, create=True)
        try:
            fd = self._create(name, os.O_WRONLY | os.O_APPEND, 0o644, dir_fd, path)
        finally:
            os.close(dir_fd)
        return FilesystemWriter(fd, os.fstat(fd).st_size)

    async def read(self, path: str, offset: int = 0, length: int | None = None
                   ) -> AsyncIterator[bytes]:
        fd = self._open(path, os.O_RDONLY)
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise PathNotFound(path)
            end = info.st_size if length is None else offset + length
            global _reading
            _reading += 1
            try:
                async for chunk in _pieces(fd, offset, end):
                    yield chunk
            finally:
                _reading -= 1
        finally:
            os.close(fd)


def read_chunk_size() -> int:
    """The piece size for the next read, given how many downloads share the budget."""
    return max(MIN_READ_CHUNK, min(READ_CHUNK, READ_BUDGET // max(_reading, 1)))


async def _pieces(fd: int, offset: int, end: int) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    ramp = MIN_READ_CHUNK
    sent = 0
    while offset < end:
        size = min(ramp, read_chunk_size(), end - offset)
        # Data in the page cache is copied on the event loop (a thread hand-off per
        # chunk costs more than the copy); data still on disk is read in a thread.
        if _in_page_cache(fd, offset + size - 1):
            chunk = os.pread(fd, size, offset)
        else:
            chunk = await asyncio.to_thread(os.pread, fd, size, offset)
        if not chunk:
            break
        offset += len(chunk)
        handed = loop.time()
        yield chunk
        sent += len(chunk)
        slow = loop.time() - handed > SLOW_READER_S
        ramp = MIN_READ_CHUNK if slow else min(READ_CHUNK, max(MIN_READ_CHUNK, sent // 8))


class _ParentCheck:
    """Whether a path's parent directory, links resolved, lies inside the root. A batch
    touches many entries in few directories: each directory is judged once, from its
    parent's verdict and one lstat of its own (a full realpath only where a link is).
    The entry itself is lstat'ed by the caller, so a symlink there is never followed."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.known: dict[str, bool] = {root: True}

    def __call__(self, full: str) -> bool:
        return self._directory_inside(os.path.dirname(full))

    def _directory_inside(self, directory: str) -> bool:
        verdict = self.known.get(directory)
        if verdict is not None:
            return verdict
        verdict = directory.startswith(self.root + os.sep) and \
            self._directory_inside(os.path.dirname(directory))
        if verdict:
            try:
                is_link = stat.S_ISLNK(os.lstat(directory).st_mode)
            except OSError:
                is_link = False  # missing: nothing below it will be found either
            if is_link:
                resolved = os.path.realpath(directory)
                verdict = resolved == self.root or resolved.startswith(self.root + os.sep)
        self.known[directory] = verdict
        return verdict


def _remove_entry(path: str, dir_fd: int | None = None, is_dir: bool = True) -> None:
    """rm -r without following links: a symlink (here or inside) is removed, never its
    target. Directories are opened with O_NOFOLLOW and emptied through their descriptor,
    which spares a stat and a path walk per entry. `is_dir` is a hint (from the parent's
    listing) that saves a failed open per file; a wrong hint costs one retry."""
    # NotADirectoryError: a file stands where a directory on the path should be, so what
    # the path names is not there either.
    if not is_dir:
        try:
            os.unlink(path, dir_fd=dir_fd)
            return
        except (FileNotFoundError, NotADirectoryError):
            return
        except IsADirectoryError:
            pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(path, dir_fd=dir_fd)  # a file, or a symlink
        return
    try:
        with os.scandir(fd) as entries:
            children = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        for name, child_is_dir in children:
            _remove_entry(name, fd, child_is_dir)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.rmdir(path, dir_fd=dir_fd)
