"""Prometheus metrics. Every worker process counts its own; with `http.debug.addr` and
`http.debug.prometheus.enabled`, the server keeps them in files of a directory shared by its
workers (prometheus_client's multi-process mode) and its debug server sums them at
`http.debug.prometheus.path`, as distribution's debug server serves its own.

What is measured: `http` (distribution's registry_http_*), `storage` (its
registry_storage_action_seconds) and `own` (dockyard's), all made only when metrics are on
(`enabled`): with them off, requests take no path that measures anything.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dockyard.config import Config

log = logging.getLogger("dockyard.server")

# Read by prometheus_client when it is first imported: set before any worker starts.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Gauges of what a process is doing now (requests in flight): summed over the live ones.
LIVE_GAUGE_PREFIXES = ("gauge_livesum_", "gauge_liveall_", "gauge_livemin_", "gauge_livemax_",
                       "gauge_livemostrecent_")


def enabled(config: Config) -> bool:
    """Whether the server measures: only when its debug server serves the metrics."""
    return config.http.debug is not None and config.http.debug.metrics_path is not None


def counter(name: str, documentation: str, labels: Iterable[str] = ()) -> Any:
    """A counter (prometheus_client imported here, late: see MULTIPROCESS_ENV)."""
    from prometheus_client import Counter

    return Counter(name, documentation, list(labels))


def gauge(name: str, documentation: str, labels: Iterable[str] = (),
          mode: str = "livesum") -> Any:
    """A gauge; `mode` says how the workers' values make one (prometheus_client's
    multiprocess_mode): "livesum" for what live processes hold now, "mostrecent" for a
    value any of them may set."""
    from prometheus_client import Gauge

    return Gauge(name, documentation, list(labels), multiprocess_mode=mode)  # type: ignore[arg-type]


def histogram(name: str, documentation: str, labels: Iterable[str],
              buckets: Iterable[float]) -> Any:
    from prometheus_client import Histogram

    return Histogram(name, documentation, list(labels), buckets=list(buckets))


def forget_dead_workers(directory: str) -> None:
    """Drop the live gauges of worker processes that are gone (killed, replaced): their
    requests in flight ended with them. Counters and histograms stay, as they counted."""
    from prometheus_client.multiprocess import mark_process_dead

    pids: set[int] = set()
    for name in os.listdir(directory):
        if name.startswith(LIVE_GAUGE_PREFIXES) and name.endswith(".db"):
            number = name.rsplit("_", 1)[1].removesuffix(".db")
            if number.isdigit():
                pids.add(int(number))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, another user's


SHARED_PREFIX = "dockyard-metrics-"


def share_between_workers() -> str:
    """Make this process and the workers it starts count in one fresh directory (before
    prometheus_client is imported anywhere here); returns it, for `remove_shared`. Its name
    carries this process's id, so that a later start removes it if this one is killed."""
    remove_abandoned(tempfile.gettempdir())
    directory = tempfile.mkdtemp(prefix=f"{SHARED_PREFIX}{os.getpid()}-")
    os.environ[MULTIPROCESS_ENV] = directory
    return directory


def remove_shared(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def remove_abandoned(parent: str) -> None:
    """Remove the shared directories of servers that are gone (killed with SIGKILL, which
    leaves no chance to clean up); those of live processes, and other users', stay."""
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        pid = entry.name.removeprefix(SHARED_PREFIX).split("-", 1)[0]
        if not entry.name.startswith(SHARED_PREFIX) or not pid.isdigit():
            continue
        try:
            if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            remove_shared(entry.path)
        except OSError:
            continue  # alive (another user's), or already gone
