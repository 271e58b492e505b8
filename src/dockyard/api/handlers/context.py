"""What a handler gets: the request, the registry, and URL building."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.api.http import Request
from dockyard.api.listing_cache import ListingCache
from dockyard.api.urls import URLBuilder
from dockyard.auth import Access, Identity
from dockyard.registry.registry import Registry


@dataclass(slots=True)
class Context:
    request: Request
    registry: Registry
    urls: URLBuilder
    listings: ListingCache
    # Who sent the request, with auth configured; None: no auth, everyone may do anything.
    identity: Identity | None = None

    def allows(self, access: Access) -> bool:
        """Whether the client may also do `access`, beyond what the route itself needed."""
        return self.identity is None or self.identity.allows(access)
