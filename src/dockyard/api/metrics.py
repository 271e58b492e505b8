"""distribution's HTTP metrics (namespace `registry`, subsystem `http`, as docker/go-metrics
instruments its router): per route, named by its `handler` label as distribution names it,
with `method` in lower case and `code` the status sent. As in distribution, requests that
match no route of the API (the web UI, /debug/health, /auth/token, unknown paths) are not
counted.

`HTTPMetrics` stands in front of RegistryApp.handle only when metrics are on. It matches
the route once and hands it on; what it counts is bound once per route, method and status
and kept in the worker's tallies (metrics.tally), so a request costs a few additions, no
lookups by label and no writes to the shared files."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any, Protocol

from dockyard.api.http import Receive, Response, Scope, Send
from dockyard.api.routing import ADMIN_ROUTES, ROUTES, Matched, match, within_prefix
from dockyard.metrics import counter, gauge, histogram, tally
from dockyard.metrics.own import OwnMetrics

# docker/go-metrics' buckets: latency to a minute, sizes from 1 KiB to 2 GiB.
DURATION_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 25, 60)
SIZE_BUCKETS = tuple(float(1024 << shift) for shift in range(22))


class Handle(Protocol):
    def __call__(self, scope: Scope, receive: Receive, send: Send,
                 found: Matched | None = None) -> Awaitable[Response]: ...


class _Families:
    """The five metric families, made once per process."""

    def __init__(self) -> None:
        self.requests = counter("registry_http_requests", "Total number of HTTP requests "
                                "made.", ["code", "handler", "method"])
        self.duration = histogram("registry_http_request_duration_seconds", "The HTTP "
                                  "request latencies in seconds.", ["handler", "method"],
                                  DURATION_BUCKETS)
        self.in_flight = gauge("registry_http_in_flight_requests", "The in-flight HTTP "
                               "requests", ["handler"], mode="livesum")
        self.request_size = histogram("registry_http_request_size_bytes", "The HTTP request "
                                      "sizes in bytes.", ["handler"], SIZE_BUCKETS)
        self.response_size = histogram("registry_http_response_size_bytes", "The HTTP "
                                       "response sizes in bytes.", ["handler"], SIZE_BUCKETS)


_families: _Families | None = None


def families() -> _Families:
    global _families
    if _families is None:
        _families = _Families()
    return _families


class _ByMethod:
    """A route's children for one method; those of each status are bound on first use."""

    __slots__ = ("_codes", "_handler", "_method", "_requests", "duration", "pulled")

    def __init__(self, metrics: _Families, handler: str, method: str, pulled: Any) -> None:
        self._requests = metrics.requests
        self._handler = handler
        self._method = method.lower()
        self._codes: dict[int, tally.CounterTally] = {}
        self.duration = tally.histogram(metrics.duration.labels(handler, self._method))
        self.pulled = pulled  # dockyard_pulled_bytes, for blob GETs

    def code(self, status: int) -> tally.CounterTally:
        found = self._codes.get(status)
        if found is None:
            found = self._codes[status] = tally.counter(self._requests.labels(
                str(status), self._handler, self._method))
        return found


class _ByRoute:
    __slots__ = ("_methods", "_metrics", "_pulled", "handler", "in_flight", "request_size",
                 "response_size")

    def __init__(self, metrics: _Families, pulled: tally.CounterTally, handler: str,
                 methods: list[str]) -> None:
        self._metrics = metrics
        self._pulled = pulled
        self.handler = handler
        self.in_flight = tally.gauge(metrics.in_flight.labels(handler))
        self.request_size = tally.histogram(metrics.request_size.labels(handler))
        self.response_size = tally.histogram(metrics.response_size.labels(handler))
        self._methods: dict[str, _ByMethod] = {}
        for method in methods:
            self.method(method)

    def method(self, method: str) -> _ByMethod:
        """Also a method the route does not serve (answered 405), as distribution counts
        it; the HTTP parser accepts only a fixed set of methods."""
        found = self._methods.get(method)
        if found is None:
            pulled = self._pulled if self.handler == "blob" and method == "GET" else None
            found = self._methods[method] = _ByMethod(self._metrics, self.handler, method,
                                                      pulled)
        return found


class HTTPMetrics:
    """Measures each request of the API, then has `handle` answer it."""

    def __init__(self, handle: Handle, own: OwnMetrics, prefix: str, admin: bool) -> None:
        self.handle = handle
        self.prefix = prefix
        self.admin = admin
        metrics = families()
        pulled = tally.counter(own.pulled_bytes)
        self.routes = {route.name: _ByRoute(metrics, pulled, route.name, list(route.methods))
                       for route in ((*ROUTES, *ADMIN_ROUTES) if admin else ROUTES)}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if self.prefix:
            path = within_prefix(path, self.prefix)
        found = match(path, self.admin)
        if found is None:
            await self.handle(scope, receive, send)
            return
        route = self.routes[found[0].name]
        by_method = route.method(scope["method"])
        route.in_flight.value += 1
        started = time.perf_counter()
        try:
            response = await self.handle(scope, receive, send, found)
        finally:
            route.in_flight.value -= 1
        by_method.duration.observe(time.perf_counter() - started)
        by_method.code(response.status).value += 1
        route.request_size.observe(request_size(scope))
        route.response_size.observe(response.written)
        if by_method.pulled is not None and response.status in (200, 206):
            by_method.pulled.value += response.written


def request_size(scope: Scope) -> int:
    """About the bytes of the request, as Go's promhttp reckons them: request line, header
    names and values, and the body's declared length."""
    size = (len(scope.get("raw_path") or scope["path"]) + len(scope["method"])
            + 5 + len(scope.get("http_version", "1.1")))
    query = scope.get("query_string")
    if query:
        size += 1 + len(query)
    for name, value in scope["headers"]:
        size += len(name) + len(value)
        if name == b"content-length" and value.isdigit():
            size += int(value)
    return size
