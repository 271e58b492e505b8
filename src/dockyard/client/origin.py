"""Origins (RFC 6454): scheme, host and port, the unit the client's credentials belong to."""

from __future__ import annotations

import httpx

Origin = tuple[str, str, int | None]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: httpx.URL | str) -> Origin:
    """``(scheme, host, port)`` of an absolute URL, the port spelled out even when default
    (httpx normalises ``:443`` away, so ``https://h`` and ``https://h:443`` are one origin)."""
    parsed = httpx.URL(url)
    scheme = parsed.scheme.lower()
    return scheme, parsed.host.lower(), parsed.port or _DEFAULT_PORTS.get(scheme)


def origin_text(origin: Origin) -> str:
    scheme, host, port = origin
    return f"{scheme}://{host}:{port}" if port is not None else f"{scheme}://{host}"
