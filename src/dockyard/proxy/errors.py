"""What a client is told when the upstream could not give what it asked for."""

from __future__ import annotations

from typing import Any

from dockyard.proxy.upstream import (
    UpstreamDenied,
    UpstreamError,
    UpstreamNotFound,
    UpstreamUnavailable,
)
from dockyard.registry.errors import RegistryError, TooManyRequests, Unavailable


def client_error(error: UpstreamError, unknown: type[RegistryError], detail: Any
                 ) -> RegistryError:
    """The registry error for an upstream failure: `unknown` (BLOB_UNKNOWN,
    MANIFEST_UNKNOWN) when the upstream has no such thing or will not say (a registry that
    hides what a client may not see answers 401 for both), TOOMANYREQUESTS for its rate
    limit, UNAVAILABLE (503) when it cannot be reached."""
    if isinstance(error, UpstreamNotFound):
        return unknown(detail=detail)
    if isinstance(error, UpstreamDenied):
        return unknown(f"{unknown.default_message}: the upstream registry refused it "
                       f"({error})", detail)
    if isinstance(error, UpstreamUnavailable) and error.status == 429:
        return TooManyRequests(f"the upstream registry's rate limit was reached ({error})",
                               detail)
    return Unavailable(f"the upstream registry cannot be reached and nothing is cached "
                       f"for this ({error})", detail)
