"""What is measured: the metrics of the results table and their CPU-time groups."""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from .measure import Results


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    higher_is_better: bool
    group: str  # the measured() group whose failures and CPU time it shares
    # Compare dockyard against this key of distribution (when distribution lacks the metric).
    versus: str = ""


METRICS = (
    Metric("monolithic", "Monolithic blob push (POST + one PUT)", "MB/s", True, "monolithic"),
    Metric("chunked", "Chunked blob push (POST + PATCH + PUT)", "MB/s", True, "chunked"),
    Metric("pull", "Blob pull (GET)", "MB/s", True, "pull"),
    Metric("manifest_get_rps", "Manifest GET by tag (wrk), throughput", "req/s", True,
           "manifest_get"),
    Metric("manifest_get_p99", "Manifest GET by tag (wrk), p99 latency", "ms", False,
           "manifest_get"),
    Metric("manifest_head_rps", "Manifest HEAD by tag (ab), throughput", "req/s", True,
           "manifest_head"),
    Metric("manifest_head_p99", "Manifest HEAD by tag (ab), p99 latency", "ms", False,
           "manifest_head"),
    Metric("auth_off_rps", "Manifest GET (wrk), no auth, paired with basic", "req/s", True,
           "auth"),
    Metric("auth_on_rps", "Manifest GET (wrk), htpasswd basic auth", "req/s", True, "auth"),
    Metric("auth_on_p99", "Manifest GET (wrk), basic auth, p99 latency", "ms", False, "auth"),
    Metric("auth_cost_pct", "Auth cost: req/s lost to basic auth", "%", False, "auth"),
    Metric("bearer_off_rps", "Manifest GET (wrk), no auth, paired with bearer", "req/s", True,
           "auth_bearer"),
    Metric("bearer_on_rps", "Manifest GET (wrk), bearer token (RS256 JWT)", "req/s", True,
           "auth_bearer"),
    Metric("bearer_on_p99", "Manifest GET (wrk), bearer token, p99 latency", "ms", False,
           "auth_bearer"),
    Metric("bearer_cost_pct", "Auth cost: req/s lost to bearer tokens", "%", False,
           "auth_bearer"),
    Metric("small_push", "Small blobs push (POST + PUT)", "blobs/s", True, "small_push"),
    Metric("small_pull", "Small blobs pull (GET)", "blobs/s", True, "small_pull"),
    Metric("skopeo_push", "skopeo copy push, 5-layer image", "s", False, "skopeo"),
    Metric("skopeo_pull", "skopeo copy pull, 5-layer image", "s", False, "skopeo"),
    Metric("dl_fast_peak_mib", "Concurrent downloads, fast clients: peak RSS (sum of VmHWM)",
           "MiB", False, "downloads_fast"),
    Metric("dl_fast_sampled_mib", "Concurrent downloads, fast clients: peak RSS (sampled)",
           "MiB", False, "downloads_fast"),
    Metric("dl_fast_conn_mib", "Concurrent downloads, fast clients: growth per connection",
           "MiB", False, "downloads_fast"),
    Metric("dl_fast_mbps", "Concurrent downloads, fast clients: total throughput", "MB/s",
           True, "downloads_fast"),
    Metric("dl_slow_peak_mib", "Concurrent downloads, slow clients: peak RSS (sum of VmHWM)",
           "MiB", False, "downloads_slow"),
    Metric("dl_slow_sampled_mib", "Concurrent downloads, slow clients: peak RSS (sampled)",
           "MiB", False, "downloads_slow"),
    Metric("dl_slow_conn_mib", "Concurrent downloads, slow clients: growth per connection",
           "MiB", False, "downloads_slow"),
    Metric("tags_rps", "Tags list, full (wrk), throughput", "req/s", True, "tags"),
    Metric("tags_p99", "Tags list, full (wrk), p99 latency", "ms", False, "tags"),
    Metric("catalog_ms", "Catalog, full, time to get it all (sequential; Link pages followed)",
           "ms", False, "catalog_full"),
    Metric("catalog_rps", "Catalog, full (wrk), throughput", "req/s", True, "catalog_full"),
    Metric("catalog_p99", "Catalog, full (wrk), p99 latency", "ms", False, "catalog_full"),
    Metric("catalog_walk_s", "Catalog, every page of ?n=100&last=", "s", False, "catalog_walk"),
    Metric("gc_offline_s", "Garbage collection, registry stopped", "s", False, "gc_offline"),
    Metric("gc_online_s", "Garbage collection, dockyard serving (vs distribution stopped)", "s",
           False, "gc_online", versus="gc_offline_s"),
    Metric("gc_changes_s", "Garbage collection, dockyard serving, what changed alone "
           "(storage.index.solewriter; vs distribution stopped)", "s", False, "gc_changes",
           versus="gc_offline_s"),
)

CPU_GROUPS = {
    "monolithic": "monolithic push",
    "chunked": "chunked push",
    "pull": "pull",
    "manifest_get": "manifest GET (wrk)",
    "manifest_head": "manifest HEAD (ab)",
    "auth": "manifest GET without + with basic auth (wrk)",
    "auth_bearer": "manifest GET without + with a bearer token (wrk)",
    "small_push": "small blobs push",
    "small_pull": "small blobs pull",
    "skopeo": "skopeo push + pull",
    "downloads_fast": "concurrent downloads, fast clients",
    "downloads_slow": "concurrent downloads, slow clients",
    "tags": "tags list (wrk)",
    "catalog_full": "catalog full (sequential + wrk)",
    "catalog_walk": "catalog, all pages",
    "gc_offline": "GC, registry stopped",
    "gc_online": "GC, dockyard serving",
    "gc_changes": "GC, dockyard serving, what changed alone",
}

LIMITS = (
    ("limit_sha256", "sha256 (hashlib, one core, 16 MiB buffers)"),
    ("limit_disk", "disk write, 4 MiB chunks then fsync, same filesystem as the stores"),
    ("limit_nginx", "nginx-light serving the same blob file from disk (curl)"),
)


def median(results: Results, key: str, name: str) -> float | None:
    values = results.values.get(key, {}).get(name)
    return statistics.median(values) if values else None


def fmt(value: float) -> str:
    if value == 0:
        return "0"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
