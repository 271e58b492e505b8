"""dockyard's own metrics (`dockyard_*`), beside distribution's. They are made in a worker
when metrics are on (`enable`); until then `current` is None and every function here
returns at once, so the places that count cost nothing with metrics off."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from dockyard.metrics import counter, gauge


class OwnMetrics:
    def __init__(self) -> None:
        self.pushed_bytes = counter(
            "dockyard_pushed_bytes", "Bytes of blobs clients uploaded, counted as each "
            "upload is committed (mounts and pull-through fetches are not uploads)")
        self.pulled_bytes = counter(
            "dockyard_pulled_bytes", "Bytes of blobs sent to clients (blob GETs answered "
            "200 or 206; a GET redirected to the storage sends none)")
        # A gauge of requests (not of upload sessions, which span workers and restarts):
        # what each live worker is receiving now, summed.
        self.uploads_in_progress = gauge(
            "dockyard_uploads_in_progress", "Blob upload requests (PATCH, PUT, one-request "
            "POST) whose data is being received and stored now", mode="livesum")
        self.gc_runs = counter(
            "dockyard_gc_runs", "Garbage collections run by the server, by result: "
            "finished, failed, dry_run", ["result"])
        self.gc_freed_bytes = counter(
            "dockyard_gc_freed_bytes", "Bytes of blobs deleted by garbage collection")
        # Set by every worker from the shared index (metrics.index): the newest value wins.
        self.index_entries = gauge(
            "dockyard_index_entries", "What the metadata index holds, by kind: "
            "repositories, tags, manifests, blobs", ["kind"], mode="mostrecent")
        self.index_blob_bytes = gauge(
            "dockyard_index_blob_bytes", "Bytes of the blobs the index knows, each counted "
            "once", mode="mostrecent")
        self.auth_failures = counter(
            "dockyard_auth_failures", "Requests with credentials that authentication "
            "refused, by reason: unauthorized (wrong or expired), forbidden (not allowed), "
            "throttled (too many failed logins)", ["reason"])
        self.listing_cache = counter(
            "dockyard_listing_cache_requests", "Lookups of tag-list and catalog pages in "
            "the worker's cache, by result: hit, miss", ["result"])
        # Events in the index's outbox not yet delivered, per endpoint, set by the one
        # worker sending to it (the others hold 0): "livesum" drops a dead sender's value.
        self.webhook_backlog = gauge(
            "dockyard_webhook_backlog", "Webhook events waiting to be delivered, by "
            "endpoint", ["endpoint"], mode="livesum")
        # Label children bound once, not looked up per event.
        self.unauthorized = self.auth_failures.labels("unauthorized")
        self.forbidden = self.auth_failures.labels("forbidden")
        self.throttled = self.auth_failures.labels("throttled")
        self.cache_hits = self.listing_cache.labels("hit")
        self.cache_misses = self.listing_cache.labels("miss")


current: OwnMetrics | None = None


def enable() -> OwnMetrics:
    """Make the metrics, once per process (prometheus_client refuses a name twice)."""
    global current
    if current is None:
        current = OwnMetrics()
    return current


def count_push(size: int) -> None:
    if current is not None:
        current.pushed_bytes.inc(size)


def count_auth_failure(forbidden: bool, throttled: bool) -> None:
    if current is not None:
        (current.throttled if throttled else current.forbidden if forbidden
         else current.unauthorized).inc()


def count_listing(hit: bool) -> None:
    if current is not None:
        (current.cache_hits if hit else current.cache_misses).inc()


def count_gc_run(status: dict[str, Any]) -> None:
    """A collection ended with `status` (registry.gc_runs' final status)."""
    if current is None or status.get("state") not in ("finished", "failed"):
        return  # cut short (the server stopping): neither
    dry_run = bool((status.get("options") or {}).get("dry_run"))
    finished = status["state"] == "finished"
    current.gc_runs.labels("dry_run" if finished and dry_run else
                           "finished" if finished else "failed").inc()
    if finished and not dry_run:
        current.gc_freed_bytes.inc((status.get("report") or {}).get("bytes_freed", 0))


def set_webhook_backlog(endpoint: str, events: int) -> None:
    """For webhook delivery to report how many events wait for `endpoint`."""
    if current is not None:
        current.webhook_backlog.labels(endpoint).set(events)


class _UploadInProgress:
    """`with UPLOAD_IN_PROGRESS:` around receiving an upload's data."""

    __slots__ = ()

    def __enter__(self) -> None:
        if current is not None:
            current.uploads_in_progress.inc()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if current is not None:
            current.uploads_in_progress.dec()


UPLOAD_IN_PROGRESS = _UploadInProgress()
