"""GET, HEAD, PUT and DELETE of manifests, by tag or digest."""

from __future__ import annotations

from email.utils import formatdate

from dockyard.api.handlers.context import Context
from dockyard.api.http import Response
from dockyard.registry import mediatypes
from dockyard.registry.errors import ManifestUnknown, TagInvalid
from dockyard.registry.reference import is_tag


def _accepts(accept_header: str | None, media_type: str) -> bool:
    """Whether a client can take an OCI manifest; clients that name no OCI type cannot.

    Like distribution, only OCI types are held back: Docker types predate the Accept
    negotiation and every client takes them."""
    if not accept_header or media_type not in mediatypes.OCI_TYPES:
        return True
    accepted = {part.split(";", 1)[0].strip().lower() for part in accept_header.split(",")}
    accepted.discard("")
    return not accepted or bool(accepted & {media_type, "*/*", "application/*"})


def _check_reference(reference: str) -> None:
    """A reference is a tag or a digest (checked where it is parsed); anything else, such
    as a tag with non-ASCII letters or longer than 128 characters, is TAG_INVALID."""
    if not is_tag(reference) and ":" not in reference:
        raise TagInvalid("invalid tag: up to 128 of [A-Za-z0-9_.-], not starting with . or -",
                         {"reference": reference[:200]})


async def get_manifest(ctx: Context, name: str, reference: str) -> Response:
    repository = ctx.registry.repository(name)
    if not is_tag(reference) and ":" not in reference:
        # No manifest can have such a name: unknown, as distribution and the OCI
        # conformance suite have it (only a push to such a tag is TAG_INVALID).
        raise ManifestUnknown("no manifest can be named that: a tag is up to 128 of "
                              "[A-Za-z0-9_.-], not starting with . or -",
                              {"reference": reference[:200]})
    request = ctx.request
    stored = await repository.manifests.get(reference)
    await repository.manifests.note_pulled(reference, stored)
    digest, media_type, size, body = stored.digest, stored.media_type, stored.size, stored.data
    if not _accepts(request.header("accept"), media_type):
        raise ManifestUnknown(
            f"manifest is {media_type}, which the Accept header does not allow",
            {"mediaType": media_type},
        )
    etag = f'"{digest}"'
    headers = {"Docker-Content-Digest": str(digest), "ETag": etag, "Content-Type": media_type,
               "Content-Length": str(size)}
    if stored.modified is not None:
        # When the tag (or the manifest, by digest) was last pushed; distribution sends
        # none, and clients that do not use it ignore it.
        headers["Last-Modified"] = formatdate(stored.modified, usegmt=True)
    if request.header("if-none-match") == etag:
        return Response(304, headers=headers)
    return Response(200, body, headers)


async def put_manifest(ctx: Context, name: str, reference: str) -> Response:
    repository = ctx.registry.repository(name)
    await repository.check_writable()
    _check_reference(reference)
    request = ctx.request
    data = await request.read(repository.manifests.max_size)
    pushed = await repository.manifests.put(reference, data, request.header("content-type"))
    headers = {
        "Location": ctx.urls.manifest(name, str(pushed.digest)),
        "Docker-Content-Digest": str(pushed.digest),
    }
    if pushed.manifest.subject is not None:
        headers["OCI-Subject"] = str(pushed.manifest.subject.digest)
    return Response(201, headers=headers)


async def delete_manifest(ctx: Context, name: str, reference: str) -> Response:
    repository = ctx.registry.repository(name)
    await repository.check_deletable()
    _check_reference(reference)
    await repository.manifests.delete(reference)
    return Response(202)
