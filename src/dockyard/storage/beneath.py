"""Opening files and directories without leaving a directory tree, links included.

Linux's openat2(2) with RESOLVE_BENEATH refuses, inside the kernel and in the same call as
the open, any resolution (a symlink, at any depth) that would leave the starting directory.
Where it is missing (kernels before 5.6, or a seccomp profile that refuses it), and for the
rare path it refuses (it also refuses absolute links that land inside the tree), the path
is resolved with realpath first: two steps instead of one, but the same verdict.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import sys

# The number is 437 on the architectures that share Linux's generic syscall table; on
# others (MIPS, Alpha) dockyard falls back to realpath rather than guess.
_SYS_OPENAT2 = 437 if sys.platform.startswith("linux") and platform.machine() in {
    "x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x"} else None
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


_libc = ctypes.CDLL(None, use_errno=True) if _SYS_OPENAT2 else None
_have_openat2 = _libc is not None


class Escapes(OSError):
    """The path resolves outside the tree."""


class Tree:
    """A directory tree that paths are opened inside of."""

    def __init__(self, root: str) -> None:
        self.root = os.path.realpath(root)
        self._fd = os.open(self.root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def open(self, relative: str, flags: int) -> int:
        """A descriptor for `relative` (no leading slash), opened with `flags`. Raises
        Escapes if resolving it leaves the tree, else what os.open raises."""
        global _have_openat2
        if _have_openat2:
            try:
                return self._openat2(relative, flags)
            except Escapes:
                pass  # also said of absolute links that land inside: judged by realpath below
            except OSError as error:
                if error.errno not in (errno.ENOSYS, errno.EPERM):
                    raise
                _have_openat2 = False  # refused by the kernel or a sandbox: fall back
        full = os.path.join(self.root, relative) if relative else self.root
        if full != self.root and not os.path.realpath(full).startswith(self.root + os.sep):
            raise Escapes(errno.EXDEV, "path resolves outside the store", relative)
        return os.open(full, flags | os.O_CLOEXEC)

    def directory(self, relative: str, create: bool = False) -> int:
        """An O_PATH descriptor of directory `relative`, opened as `open` opens, for the
        *at calls (openat, mkdirat, renameat, unlinkat) of writes. With `create`, missing
        directories are made one at a time, each by mkdirat in its parent's descriptor and
        then opened again from the root: no link, even one planted meanwhile, decides
        where a directory is made or what is written below it."""
        flags = os.O_PATH | os.O_DIRECTORY
        try:
            return self.open(relative, flags)
        except FileNotFoundError:
            if not create or not relative:
                raise
        parent, _, name = relative.rpartition("/")
        parent_fd = self.directory(parent, create=True)
        try:
            with contextlib.suppress(FileExistsError):  # made meanwhile by another writer
                os.mkdir(name, dir_fd=parent_fd)
        finally:
            os.close(parent_fd)
        return self.open(relative, flags)

    def _openat2(self, relative: str, flags: int) -> int:
        assert _libc is not None
        how = _OpenHow(flags | os.O_CLOEXEC, 0, _RESOLVE_BENEATH | _RESOLVE_NO_MAGICLINKS)
        fd: int = _libc.syscall(_SYS_OPENAT2, self._fd, os.fsencode(relative or "."),
                                ctypes.byref(how), ctypes.sizeof(how))
        if fd < 0:
            code = ctypes.get_errno()
            if code == errno.EXDEV:
                raise Escapes(code, "path resolves outside the store", relative)
            raise OSError(code, os.strerror(code), relative)
        return fd
