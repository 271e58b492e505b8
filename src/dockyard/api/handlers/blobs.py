"""GET, HEAD and DELETE of blobs."""

from __future__ import annotations

from dockyard.api.errors import HTTPError
from dockyard.api.handlers.context import Context
from dockyard.api.handlers.params import byte_range
from dockyard.api.http import Response, StreamResponse
from dockyard.registry.errors import RangeInvalid
from dockyard.registry.reference import Digest

# Blobs never change for a digest: caches may keep them for as long as they like.
IMMUTABLE = "max-age=31536000"


async def get_blob(ctx: Context, name: str, digest: str) -> Response:
    repository = ctx.registry.repository(name)
    parsed = Digest.parse(digest)
    blob = await repository.blobs.describe(parsed)
    store = ctx.registry.blobs
    if ctx.request.method == "GET":
        # As distribution: before ranges or conditions, which the storage then answers.
        url = await store.download_url(parsed)
        if url is not None:
            return Response(307, headers={"Location": url})
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
    try:
        wanted = byte_range(ctx.request.header("range"), blob.size)
    except RangeInvalid as error:
        raise HTTPError(416, error.code, error.message, error.detail,
                        {"Content-Range": f"bytes */{blob.size}"}) from None
    if wanted is not None:
        first, last = wanted
        length = last - first + 1
        headers["Content-Range"] = f"bytes {first}-{last}/{blob.size}"
        headers["Content-Length"] = str(length)
        return StreamResponse(206, store.read(parsed, first, length), headers)
    headers["Content-Length"] = str(blob.size)
    return StreamResponse(200, store.read(parsed), headers)


async def delete_blob(ctx: Context, name: str, digest: str) -> Response:
    ctx.registry.check_deletable()
    repository = ctx.registry.repository(name)
    parsed = Digest.parse(digest)
    await repository.blobs.unlink(parsed)
    return Response(202, headers={"Docker-Content-Digest": str(parsed)})
