"""The debug server (`http.debug.addr`), as distribution's: `/debug/health` for probes
that watch that port, and with `http.debug.prometheus.enabled` the metrics every worker
counted. It runs in a thread of the supervising process, apart from the workers."""

from __future__ import annotations

import json
import logging
import os
import socketserver
import threading
from collections.abc import Callable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dockyard.config.model import HTTPConfig
from dockyard.metrics import MULTIPROCESS_ENV, forget_dead_workers

log = logging.getLogger("dockyard.server")

HEALTH_PATH = "/debug/health"
HEALTH_TIMEOUT = 10.0

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], list[bytes]]


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # probes and scrapes every few seconds would drown the log


def serve_debug(http: HTTPConfig) -> WSGIServer:
    """Start the debug server `http.debug` describes in a thread of this process."""
    config = http.debug
    assert config is not None
    metrics = _metrics_page() if config.metrics_path is not None else None
    health = _HealthRelay(http.local_url(HEALTH_PATH))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO")
        if path == HEALTH_PATH:
            return health(environ, start_response)
        if metrics is not None and path == config.metrics_path:
            return metrics(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"404 page not found\n"]

    server = make_server(config.host or "0.0.0.0", config.port, app,
                         server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="debug-server", daemon=True).start()
    log.info("debug server on %s:%d%s", config.host or "0.0.0.0", config.port,
             f", metrics at {config.metrics_path}" if config.metrics_path else "")
    return server


def _metrics_page() -> WSGIApp:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    directory = os.environ.get(MULTIPROCESS_ENV)
    if directory:
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]

    def page(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if directory:
            forget_dead_workers(directory)
        body = generate_latest(registry)
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST),
                                  ("Content-Length", str(len(body)))])
        return [body]

    return page


class _HealthRelay:
    """The main port's health answer, asked of it over loopback: the same checks, and a
    probe of this port also fails when the workers stop answering."""

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url
        # The certificate names the public host, not loopback: this is our own server.
        self._client = httpx.Client(timeout=HEALTH_TIMEOUT, verify=False)
        self._failure: str | None = None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]
                 ) -> list[bytes]:
        import httpx

        try:
            answer = self._client.get(self.url)
        except httpx.HTTPError as error:
            failure = str(error) or type(error).__name__
            if failure != self._failure:  # once per cause, not once per probe
                log.error("health check: the server does not answer at %s: %s", self.url,
                          failure)
                self._failure = failure
            body = json.dumps({"http": "the server does not answer"}).encode()
            return self._answer(start_response, "503 Service Unavailable", body)
        self._failure = None
        status = f"{answer.status_code} {answer.reason_phrase}"
        return self._answer(start_response, status, answer.content)

    @staticmethod
    def _answer(start_response: Callable[..., Any], status: str, body: bytes) -> list[bytes]:
        start_response(status, [("Content-Type", "application/json; charset=utf-8"),
                                ("Content-Length", str(len(body)))])
        return [body]
