"""The URL space of the Distribution API, matched from the end so names may hold slashes."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dockyard.api.handlers import admin, blobs, listing, manifests, read_only, uploads
from dockyard.api.handlers.context import Context
from dockyard.api.http import Response

Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    methods: dict[str, Handler]
    # The `handler` label of the route's HTTP metrics: distribution's route names.
    name: str
    # A registry-wide resource the route stands for: with auth, it needs the token scope
    # `registry:<resource>:*` rather than access to a repository.
    resource: str | None = None


def _route(pattern: str, name: str, resource: str | None = None, **methods: Handler
           ) -> Route:
    # DOTALL: a name holding a line break is routed, and so refused as NAME_INVALID.
    return Route(re.compile(pattern, re.DOTALL), methods, name, resource)


ROUTES: tuple[Route, ...] = (
    _route(r"/v2/?", "base", GET=listing.api_base, HEAD=listing.api_base),
    _route(r"/v2/_catalog", "catalog", "catalog", GET=listing.catalog),
    _route(r"/v2/(?P<name>.+)/tags/list", "tags", GET=listing.tags),
    _route(r"/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)", "manifest",
           GET=manifests.get_manifest, HEAD=manifests.get_manifest,
           PUT=manifests.put_manifest, DELETE=manifests.delete_manifest),
    _route(r"/v2/(?P<name>.+)/blobs/uploads/?", "blob_upload", POST=uploads.start_upload),
    _route(r"/v2/(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)", "blob_upload_chunk",
           GET=uploads.upload_status, PATCH=uploads.append_chunk,
           PUT=uploads.finish_upload, DELETE=uploads.cancel_upload),
    _route(r"/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)", "blob",
           GET=blobs.get_blob, HEAD=blobs.get_blob, DELETE=blobs.delete_blob),
    # Not in distribution 2.8: named as the others are.
    _route(r"/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)", "referrers",
           GET=listing.referrers),
)


# Served only with http.admin.enabled; with auth configured, only to clients allowed
# `registry:admin:*` (with htpasswd: any user).
ADMIN_ROUTES: tuple[Route, ...] = (
    _route(r"/admin/gc", "admin_gc", "admin", GET=admin.gc_status, POST=admin.start_gc),
    _route(r"/admin/notifications", "admin_notifications", "admin", GET=admin.notifications),
    _route(r"/admin/readonly", "admin_readonly", "admin", GET=read_only.read_only_status,
           POST=read_only.switch_read_only),
)


Matched = tuple[Route, dict[str, str]]  # a route and the parameters its pattern took


def match(path: str, admin: bool = False) -> Matched | None:
    for route in (*ROUTES, *ADMIN_ROUTES) if admin else ROUTES:
        found = route.pattern.fullmatch(path)
        if found:
            return route, found.groupdict()
    return None


def within_prefix(path: str, prefix: str) -> str:
    """The path below http.prefix, or one no route matches if it is outside."""
    if not (path == prefix or path.startswith(prefix + "/")):
        return "/__outside_prefix__"
    return path[len(prefix):] or "/"


__all__ = ["ROUTES", "Context", "Matched", "Route", "match", "within_prefix"]
