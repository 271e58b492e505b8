"""Blob uploads: start (or mount, or push in one request), chunks, status, finish, cancel."""

from __future__ import annotations

from dockyard.api.handlers.context import Context
from dockyard.api.handlers.params import content_length, content_range
from dockyard.api.http import Response
from dockyard.auth import Access
from dockyard.metrics.own import UPLOAD_IN_PROGRESS, count_push
from dockyard.registry.blobs import BlobDescriptor
from dockyard.registry.errors import BlobUnknown, DigestInvalid, NameInvalid
from dockyard.registry.reference import Digest, validate_name
from dockyard.registry.uploads import UploadStatus


def _range(size: int) -> str:
    # distribution reports "0-0" for an empty upload; clients rely on the header being there.
    return f"0-{max(size - 1, 0)}"


def _progress(ctx: Context, name: str, status: UploadStatus, code: int) -> Response:
    return Response(code, headers={
        "Location": ctx.urls.upload(name, status.id),
        "Range": _range(status.size),
        "Docker-Upload-UUID": status.id,
    })


def _created(ctx: Context, name: str, blob: BlobDescriptor) -> Response:
    return Response(201, headers={
        "Location": ctx.urls.blob(name, str(blob.digest)),
        "Docker-Content-Digest": str(blob.digest),
    })


def _required_digest(ctx: Context) -> Digest:
    raw = ctx.request.query_value("digest")
    if not raw:
        raise DigestInvalid("the digest query parameter is required to finish an upload")
    return Digest.parse(raw)


async def start_upload(ctx: Context, name: str) -> Response:
    repository = ctx.registry.repository(name)
    await repository.check_writable()
    request = ctx.request
    mount = request.query_value("mount")
    if mount:
        mounted = await _try_mount(ctx, name, mount, request.query_value("from"))
        if mounted is not None:
            return _created(ctx, name, mounted)
    digest_text = request.query_value("digest")
    if digest_text:
        digest = Digest.parse(digest_text)
        status = await repository.uploads.start()
        try:
            with UPLOAD_IN_PROGRESS:
                blob = await repository.uploads.commit(status.id, digest, request.stream(),
                                                       content_length(request))
        except BaseException:
            # A one-request upload that failed leaves no session for anyone to resume.
            await repository.uploads.cancel(status.id)
            raise
        count_push(blob.size)
        return _created(ctx, name, blob)
    status = await repository.uploads.start()
    return _progress(ctx, name, status, 202)


async def _try_mount(ctx: Context, name: str, digest_text: str, source: str | None
                     ) -> BlobDescriptor | None:
    """Link a blob another repository has; None (start an upload instead) if it can't."""
    try:
        digest = Digest.parse(digest_text)
    except DigestInvalid:
        return None
    target = ctx.registry.repository(name)
    if source:
        try:
            origin = ctx.registry.repository(validate_name(source))
        except NameInvalid:
            return None
        # Mounting reads the source: without pull on it, a mount would copy what the client
        # may not read, and 201 against 202 would tell it which digests the source holds.
        # Clients asked for that pull in their token scope; lacking it, they simply upload.
        if not ctx.allows(Access("repository", origin.name, ("pull",))):
            return None
        found = await origin.blobs.find(digest)
    else:
        # No `from`: mount only what this repository already has.
        found = await target.blobs.find(digest)
    if found is None:
        return None
    try:
        await target.blobs.link(digest, mounted_from=source or None)
    except BlobUnknown:
        return None  # collected since it was found: the client uploads it instead
    return found


async def upload_status(ctx: Context, name: str, upload_id: str) -> Response:
    repository = ctx.registry.repository(name)
    status = await repository.uploads.status(upload_id)
    return _progress(ctx, name, status, 204)


async def append_chunk(ctx: Context, name: str, upload_id: str) -> Response:
    repository = ctx.registry.repository(name)
    await repository.check_writable()
    chunk = content_range(ctx.request)
    with UPLOAD_IN_PROGRESS:
        status = await repository.uploads.append(
            upload_id, ctx.request.stream(), start=chunk[0] if chunk else None,
            length=content_length(ctx.request),
        )
    return _progress(ctx, name, status, 202)


async def finish_upload(ctx: Context, name: str, upload_id: str) -> Response:
    repository = ctx.registry.repository(name)
    await repository.check_writable()
    digest = _required_digest(ctx)
    request = ctx.request
    body = None
    with UPLOAD_IN_PROGRESS:
        if request.may_have_body:
            chunk = content_range(request)
            if chunk is not None:
                await repository.uploads.append(upload_id, request.stream(), start=chunk[0],
                                                length=content_length(request))
            else:
                body = request.stream()
        blob = await repository.uploads.commit(upload_id, digest, body,
                                               content_length(request))
    count_push(blob.size)
    return _created(ctx, name, blob)


async def cancel_upload(ctx: Context, name: str, upload_id: str) -> Response:
    repository = ctx.registry.repository(name)
    await repository.check_writable()
    await repository.uploads.cancel(upload_id)
    return Response(204)
