"""What a handler gets: the request, the registry, and URL building."""

from __future__ import annotations

from dataclasses import dataclass

from dockyard.api.http import Request
from dockyard.api.listing_cache import ListingCache
from dockyard.api.urls import URLBuilder
from dockyard.registry.registry import Registry


@dataclass(slots=True)
class Context:
    request: Request
    registry: Registry
    urls: URLBuilder
    listings: ListingCache
