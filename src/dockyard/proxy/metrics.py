"""The pull-through cache's metrics (served as dockyard.metrics says)."""

from __future__ import annotations

from dockyard.metrics import counter

PROXY_STALE_SERVED = counter(
    "dockyard_proxy_stale_served", "Manifests served from the cache because the upstream "
    "failed (unreachable, timed out, 429 or 5xx)", ["upstream"])
PROXY_UPSTREAM_FAILURES = counter(
    "dockyard_proxy_upstream_failures", "Requests to an upstream that failed, by kind: "
    "unavailable, ratelimited, denied", ["upstream", "kind"])
PROXY_FETCHES = counter(
    "dockyard_proxy_fetches", "Manifests and blobs fetched from an upstream and kept",
    ["upstream", "kind"])
PROXY_FETCHED_BYTES = counter(
    "dockyard_proxy_fetched_bytes", "Bytes of blobs fetched from an upstream", ["upstream"])


def count_failure(upstream: str, error: Exception) -> None:
    from dockyard.proxy.upstream import UpstreamDenied, UpstreamNotFound, UpstreamUnavailable

    if isinstance(error, UpstreamNotFound):
        return  # an answer, not a failure
    kind = ("denied" if isinstance(error, UpstreamDenied) else
            "ratelimited" if isinstance(error, UpstreamUnavailable) and error.status == 429
            else "unavailable")
    PROXY_UPSTREAM_FAILURES.labels(upstream, kind).inc()
