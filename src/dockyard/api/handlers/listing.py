"""The API root, the catalog, tag lists and referrers."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from dockyard.api.handlers.context import Context
from dockyard.api.handlers.params import pagination
from dockyard.api.http import Response, encode_json
from dockyard.api.listing_cache import EncodedPage
from dockyard.registry import mediatypes
from dockyard.registry.reference import Digest, is_name, is_tag
from dockyard.registry.referrers import referrers_page


async def api_base(ctx: Context) -> Response:
    # Byte for byte distribution's answer, which (unlike its other JSON) has no newline.
    return Response(200, b"{}", content_type="application/json")


def _next_link(ctx: Context, path: str, last: str, limit: int) -> dict[str, str]:
    query = urlencode({"last": last, "n": limit})
    return {"Link": f'<{ctx.urls.prefix}{path}?{query}>; rel="next"'}


def _page(names: list[str], limit: int | None) -> tuple[list[str], bool]:
    """Split off the extra name fetched to learn whether another page follows."""
    if limit is None or len(names) <= limit:
        return names, False
    return names[:limit], True


async def catalog(ctx: Context) -> Response:
    limit, last = pagination(ctx.request)
    version = await ctx.registry.metadata_version()
    key = ("catalog", last, limit)
    page = ctx.listings.get(key, version)
    if page is None:
        names, more = _page(
            await ctx.registry.repositories(last, None if limit is None else limit + 1), limit)
        page = _encode({"repositories": names}, names, more)
        # Only pages after a real name are kept: any other `last` (as long as a request
        # head allows) still gets its answer, but cannot fill the cache with junk keys.
        if last is None or is_name(last):
            ctx.listings.put(key, version, page)
    return _respond(ctx, "/v2/_catalog", page, limit)


async def tags(ctx: Context, name: str) -> Response:
    repository = ctx.registry.repository(name)
    limit, last = pagination(ctx.request)
    elsewhere = await repository.tag_list()
    if elsewhere is not None:
        # An upstream's tags: never kept in the listing cache (its version says nothing
        # of them).
        names, more = _page([tag for tag in elsewhere if tag > (last or "")][
            :None if limit is None else limit + 1], limit)
        return _respond(ctx, f"/v2/{name}/tags/list",
                        _encode({"name": name, "tags": names}, names, more), limit)
    version = await ctx.registry.metadata_version()
    key = ("tags", repository.name, last, limit)
    page = ctx.listings.get(key, version)
    if page is None:
        await repository.require_exists()
        names, more = _page(
            await repository.tags.page(last, None if limit is None else limit + 1), limit)
        page = _encode({"name": name, "tags": names}, names, more)
        if last is None or is_tag(last):  # as for the catalog
            ctx.listings.put(key, version, page)
    return _respond(ctx, f"/v2/{name}/tags/list", page, limit)


def _encode(document: dict[str, Any], names: list[str], more: bool) -> EncodedPage:
    return EncodedPage(encode_json(document), names[-1] if more and names else None)


def _respond(ctx: Context, path: str, page: EncodedPage, limit: int | None) -> Response:
    # The Link header depends on the request (host, forwarded prefix), so it is not cached.
    headers = (_next_link(ctx, path, page.next_last, limit or 0)
               if page.next_last is not None else {})
    return Response(200, page.body, headers, content_type="application/json")


async def referrers(ctx: Context, name: str, digest: str) -> Response:
    repository = ctx.registry.repository(name)
    subject = Digest.parse(digest)
    artifact_type = ctx.request.query_value("artifactType") or None
    after = ctx.request.query_value("last") or None
    if after is not None:
        Digest.parse(after)  # only ever a digest from a previous page's Link
    await repository.catch_up_while_index_builds()
    page = await referrers_page(ctx.registry.index, repository.name, subject, artifact_type, after)
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    if page.next_after is not None:
        query = {"last": page.next_after, **({"artifactType": artifact_type}
                                              if artifact_type else {})}
        headers["Link"] = (f"<{ctx.urls.prefix}/v2/{name}/referrers/{digest}?"
                           f'{urlencode(query)}>; rel="next"')
    return Response(200, page.body, headers, content_type=mediatypes.OCI_INDEX)
