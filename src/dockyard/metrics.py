"""Prometheus metrics. Every worker process counts its own; with `http.debug.addr` and
`http.debug.prometheus.enabled`, the server keeps them in files of a directory shared by its
workers (prometheus_client's multi-process mode) and its debug server sums them at
`http.debug.prometheus.path`, as distribution's debug server serves its own."""

from __future__ import annotations

import logging
import os
import shutil
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dockyard.config.model import DebugServerConfig

log = logging.getLogger("dockyard.server")

# Read by prometheus_client when it is first imported: set before any worker starts.
MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"


def counter(name: str, documentation: str, labels: Iterable[str] = ()) -> Any:
    """A counter (prometheus_client imported here, late: see MULTIPROCESS_ENV)."""
    from prometheus_client import Counter

    return Counter(name, documentation, list(labels))


def share_between_workers() -> str:
    """Make this process and the workers it starts count in one fresh directory (before
    prometheus_client is imported anywhere here); returns it, for `remove_shared`."""
    directory = tempfile.mkdtemp(prefix="dockyard-metrics-")
    os.environ[MULTIPROCESS_ENV] = directory
    return directory


def remove_shared(directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes every few seconds would drown the log


def serve_debug(config: DebugServerConfig) -> WSGIServer:
    """Start the debug server in a thread of this (the supervising) process."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    if os.environ.get(MULTIPROCESS_ENV):
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if config.metrics_path is None or environ.get("PATH_INFO") != config.metrics_path:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"404 page not found\n"]
        body = generate_latest(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                  ("Content-Length", str(len(body)))])
        return [body]

    server = make_server(config.host or "0.0.0.0", config.port, app,
                         server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="debug-server", daemon=True).start()
    log.info("debug server on %s:%d%s", config.host or "0.0.0.0", config.port,
             f", metrics at {config.metrics_path}" if config.metrics_path else "")
    return server
