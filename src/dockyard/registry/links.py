"""Link files: a small file holding a digest, distribution's way of pointing at content."""

from __future__ import annotations

from dockyard.registry.errors import DigestInvalid
from dockyard.registry.reference import Digest
from dockyard.storage import PathNotFound, StorageDriver


async def read_link(driver: StorageDriver, path: str) -> Digest | None:
    try:
        content = await driver.get_content(path)
    except PathNotFound:
        return None
    try:
        return Digest.parse(content.decode("ascii").strip())
    except (UnicodeDecodeError, DigestInvalid):
        # A corrupt link is as good as none; the content it named stays reachable otherwise.
        return None


async def write_link(driver: StorageDriver, path: str, digest: Digest) -> None:
    await driver.put_content(path, str(digest).encode("ascii"))
