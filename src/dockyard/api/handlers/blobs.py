"""GET, HEAD and DELETE of blobs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from dockyard.api.errors import HTTPError
from dockyard.api.handlers.context import Context
from dockyard.api.handlers.params import byte_range
from dockyard.api.http import Response, StreamResponse
from dockyard.registry.blobs import BlobDescriptor
from dockyard.registry.errors import RangeInvalid
from dockyard.registry.reference import Digest

# Blobs never change for a digest: caches may keep them for as long as they like.
IMMUTABLE = "max-age=31536000"


async def get_blob(ctx: Context, name: str, digest: str) -> Response:
    repository = ctx.registry.repository(name)
    parsed = Digest.parse(digest)
    if ctx.request.method == "GET":
        blob = await repository.blobs.open(parsed)
        if blob.size is not None:
            await repository.blobs.note_pulled(BlobDescriptor(parsed, blob.size))
        # As distribution: before ranges or conditions, which the storage then answers.
        url = await repository.blobs.download_url(parsed)
        if url is not None:
            return Response(307, headers={"Location": url})
        read, size = blob.read, blob.size
    else:
        # HEAD: what the blob is, without starting to read it (from an upstream, for a
        # pull-through cache); the response has no body to read.
        described = await repository.blobs.describe(parsed)
        await repository.blobs.note_pulled(described)  # as distribution counts a HEAD
        read, size = _nothing, described.size
    etag = f'"{parsed}"'
    headers = {
        "Docker-Content-Digest": str(parsed),
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": IMMUTABLE,
        "Content-Type": "application/octet-stream",
    }
    if ctx.request.header("if-none-match") == etag:
        return Response(304, headers=headers)
    if size is None:
        # An upstream that did not say how big: the bytes as they come, without ranges.
        del headers["Accept-Ranges"]
        return StreamResponse(200, read(0, None), headers)
    try:
        wanted = byte_range(ctx.request.header("range"), size)
    except RangeInvalid as error:
        raise HTTPError(416, error.code, error.message, error.detail,
                        {"Content-Range": f"bytes */{size}"}) from None
    if wanted is not None:
        first, last = wanted
        length = last - first + 1
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        headers["Content-Length"] = str(length)
        return StreamResponse(206, read(first, length), headers)
    headers["Content-Length"] = str(size)
    return StreamResponse(200, read(0, None), headers)


async def _nothing(_offset: int, _length: int | None) -> AsyncIterator[bytes]:
    return
    yield b""  # an async generator that yields nothing


async def delete_blob(ctx: Context, name: str, digest: str) -> Response:
    repository = ctx.registry.repository(name)
    await repository.check_deletable()
    parsed = Digest.parse(digest)
    await repository.blobs.unlink(parsed)
    return Response(202, headers={"Docker-Content-Digest": str(parsed)})
