"""Hashing uploads so that a later chunk, in any worker, continues where the last one ended.

hashlib cannot save its state. `rehashes` (Rust, released GIL) hashes sha256 at hashlib's
speed and can: after each chunk the state (about a hundred bytes) is written beside the
upload, so the next chunk, arriving at another worker or after a restart, resumes it
instead of reading the whole upload again.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

import rehashes


class Hasher(Protocol):
    @property
    def name(self) -> str: ...

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class ResumableSHA256:
    @property
    def name(self) -> str:
        return "sha256"

    def __init__(self, state: rehashes.PySha256 | None = None) -> None:
        self._hasher = state if state is not None else rehashes.PySha256()

    def update(self, data: bytes, /) -> None:
        self._hasher.update(data)

    def hexdigest(self) -> str:
        # finalize() consumes nothing we keep: hash a copy so the state stays usable.
        copy = rehashes.PySha256.deserialize(self._hasher.serialize())
        return str(copy.finalize())

    def save(self) -> bytes:
        return bytes(self._hasher.serialize())

    @classmethod
    def restore(cls, state: bytes) -> ResumableSHA256 | None:
        try:
            return cls(rehashes.PySha256.deserialize(state))
        except Exception:  # a torn or foreign state file: hash from the data instead
            return None


def new_hasher(algorithm: str) -> Hasher:
    if algorithm == "sha256":
        return ResumableSHA256()
    return hashlib.new(algorithm)
