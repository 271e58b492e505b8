"""The ASGI application: dispatch, common headers, error mapping, access log, lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from dockyard.api import routing
from dockyard.api.access_log import log_access, request_id
from dockyard.api.clients import TrustedProxies, peer_address
from dockyard.api.errors import HTTPError, error_response, internal_error_response
from dockyard.api.handlers.context import Context
from dockyard.api.handlers.token import issue_token
from dockyard.api.http import (
    ClientDisconnected,
    Headers,
    Receive,
    Request,
    Response,
    Scope,
    Send,
)
from dockyard.api.listing_cache import ListingCache
from dockyard.api.routing import Matched, within_prefix
from dockyard.api.urls import URLBuilder
from dockyard.auth import AuthDenied, Authenticator, Identity, required_access
from dockyard.auth.htpasswd import HtpasswdAuthenticator
from dockyard.auth.issuer import TokenIssuer
from dockyard.auth.keys import load_private_key, load_trusted_keys
from dockyard.auth.policy import AccessPolicy
from dockyard.auth.token import TokenAuthenticator, TokenVerifier
from dockyard.config import Config, load_config
from dockyard.index import IndexUnavailable
from dockyard.metrics import enabled as metrics_enabled
from dockyard.metrics.own import count_auth_failure
from dockyard.proxy.expiry import expire_forever, expiry_interval
from dockyard.registry.errors import RegistryError
from dockyard.registry.events import EventOrigin, current_origin
from dockyard.registry.gc import GCOptions
from dockyard.registry.health import check_storage, describe_os_error
from dockyard.registry.maintenance import purge_uploads_forever, resync_index_forever
from dockyard.registry.reference import validate_name
from dockyard.storage import StorageDriver, UnsafeWrite
from dockyard.stores import make_driver, make_login_throttle, make_registry
from dockyard.ui.app import WebUI

log = logging.getLogger("dockyard.http")
CONFIG_ENV = "DOCKYARD_CONFIG"


class RegistryApp:
    def __init__(self, config: Config, driver: StorageDriver | None = None) -> None:
        self.config = config
        self.driver = driver or make_driver(config)
        self.measured = metrics_enabled(config)
        if self.measured:
            from dockyard.metrics.storage import TimedDriver

            self.driver = TimedDriver(self.driver)
        self.registry = make_registry(config, self.driver)
        self.prefix = config.http.prefix
        self.common_headers: Headers = [(b"docker-distribution-api-version", b"registry/2.0")]
        for name, values in config.http.headers.items():
            for value in values:
                self.common_headers.append((name.lower().encode(), value.encode()))
        self.access_log = config.log.access_log
        self.proxies = TrustedProxies(config.http.trusted_proxies)
        self.authenticator, self.token_issuer = make_authentication(config)
        self._tasks: list[asyncio.Task[None]] = []
        self.listings = ListingCache()
        self._health_failure: str | None = None  # the last failure logged
        self.ui = WebUI(config, self.registry, self.authenticator, self.token_issuer,
                        self.prefix) if config.ui.enabled else None
        # What answers a request: `handle` itself, or with metrics on, `handle` measured.
        self.serve_http: Callable[[Scope, Receive, Send], Awaitable[object]] = self.handle
        if self.measured:
            from dockyard.api.metrics import HTTPMetrics
            from dockyard.metrics import own

            self.serve_http = HTTPMetrics(self.handle, own.enable(), self.prefix,
                                          config.http.admin)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.serve_http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.lifespan(receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send,
                     found: Matched | None = None) -> Response:
        """Answer one request; `found`: its route, where the caller matched it already."""
        started = time.perf_counter()
        path = scope["path"]
        if self.prefix:
            path = within_prefix(path, self.prefix)
        request = Request(scope, receive, path, peer_address(scope))
        if self.proxies.networks:
            request.client = self.proxies.client(request.client, request.headers)
        request.id = request_id(request.header("x-request-id"))
        if self.registry.events.enabled:
            current_origin.set(lambda: self.event_origin(request))
        headers = [*self.common_headers, (b"x-request-id", request.id.encode())]
        try:
            response = await self.respond(request, found)
        except asyncio.CancelledError:
            # The server is stopping and http.draintimeout is up: say so (503, as
            # distribution's UNAVAILABLE), not a bare 500, then let the request go.
            with contextlib.suppress(Exception):
                await error_response(HTTPError(
                    503, "UNAVAILABLE", "the registry is shutting down; try again",
                    headers={"Retry-After": "5"})).send(send, scope, headers)
            raise
        # The client may leave while we answer; there is nobody left to tell.
        with contextlib.suppress(OSError, ClientDisconnected):
            await response.send(send, scope, headers)
        if self.access_log:
            log_access(request, response, time.perf_counter() - started)
        return response

    def event_origin(self, request: Request) -> EventOrigin:
        """What a notification event says of the request that caused it."""
        urls = URLBuilder(request, self.prefix, self.config.http.base_url, False)
        addr = request.client
        peer = request.scope.get("client")
        if peer and peer_address(request.scope) == addr:  # distribution's ip:port
            addr = f"[{addr}]:{peer[1]}" if ":" in addr else f"{addr}:{peer[1]}"
        return EventOrigin(request.id, addr, request.header("host") or "",
                           request.method, request.header("user-agent") or "", request.user,
                           urls.path(""))

    async def respond(self, request: Request, found: Matched | None = None) -> Response:
        try:
            return await self.dispatch(request, found)
        except RegistryError as error:
            return error_response(error)
        except OSError as error:
            # The store failed under us: tell the client what (a full disk, a read-only
            # mount) in words that name no path, and the log where.
            log.error("%s %s: storage error: %s", request.method, request.path, error)
            problem = describe_os_error(error)
            status = 507 if problem == "storage is full" else 503
            return error_response(HTTPError(status, "UNAVAILABLE", f"the registry's {problem}",
                                            None, {"Retry-After": "60"}))
        except IndexUnavailable as error:
            log.error("%s %s: %s", request.method, request.path, error)
            return error_response(HTTPError(
                503, "UNAVAILABLE", "the registry's index database is unavailable", None,
                {"Retry-After": "10"}))
        except UnsafeWrite as error:
            # A link planted in the store: the operator's to fix, and nothing the client
            # can change by retrying, so a refusal rather than a 5xx clients retry.
            log.warning("%s %s: %s", request.method, request.path, error)
            return error_response(HTTPError(
                403, "DENIED", "the registry's store refuses this write", None))
        except ClientDisconnected:
            # The body stopped short of its Content-Length or its chunked encoding broke;
            # a client still listening (half-closed) gets the spec's error body.
            return error_response(HTTPError(
                400, "SIZE_INVALID", "the request body ended early or was malformed"))
        except Exception:
            log.exception("unexpected error serving %s %s", request.method, request.path)
            return internal_error_response()

    async def dispatch(self, request: Request, found: Matched | None = None) -> Response:
        if found is None:
            path = request.path
            if path == "/":
                if self.ui is not None:
                    return Response(303, headers={"Location": self.ui.base + "/"})
                return Response(200)
            if self.ui is not None and self.ui.serves(path):
                return await self.ui.handle(request, path)
            if path == "/debug/health":
                return await self.health()
            if path == "/auth/token" and self.token_issuer is not None:
                return await issue_token(request, self.token_issuer)
            found = routing.match(path, self.config.http.admin)
            if found is None:
                raise HTTPError(404, "NOT_FOUND", "no such endpoint", {"path": path[:200]})
        route, params = found
        handler = route.methods.get(request.method)
        if handler is None:
            raise HTTPError(405, "UNSUPPORTED", f"method {request.method} is not allowed here",
                            {"method": request.method},
                            {"Allow": ", ".join(sorted(route.methods))})
        request.params = params
        if "name" in params:
            # Before authentication: the name goes into the challenge's scope, and a name
            # that is not one (control characters, quotes) is refused as such.
            validate_name(params["name"])
        identity = None
        if self.authenticator is not None:
            identity = await self.authenticate(request, params, route.resource)
            request.user = identity.user
        context = Context(request, self.registry, URLBuilder(
            request, self.prefix, self.config.http.base_url, self.config.http.relative_urls),
            self.listings, identity)
        return await handler(context, **params)

    async def authenticate(self, request: Request, params: dict[str, str],
                           resource: str | None) -> Identity:
        assert self.authenticator is not None
        access = required_access(request.method, params, resource)
        authorization = request.header("authorization")
        try:
            return await self.authenticator.authenticate(authorization, request.client, access)
        except AuthDenied as denied:
            if authorization is not None or denied.throttled:
                # A request without credentials is asked for them: not a failure.
                count_auth_failure(denied.forbidden, denied.throttled)
            headers = {"WWW-Authenticate": denied.challenge} if denied.challenge else {}
            if denied.throttled:
                raise HTTPError(429, "TOOMANYREQUESTS", denied.message, None,
                                {"Retry-After": str(denied.retry_after), **headers}) from None
            if denied.forbidden:
                raise HTTPError(403, "DENIED", denied.message,
                                [item.scope for item in access]) from None
            raise HTTPError(401, "UNAUTHORIZED", denied.message,
                            [item.scope for item in access], headers) from None

    async def health(self) -> Response:
        """200, or 503 naming the failing check with a fixed phrase: the endpoint answers
        anyone (load balancers), so the cause, which may name paths, goes to the log.
        A store in read-only maintenance mode is not probed with a write. Bodies have no
        trailing newline, as distribution's health check writes them."""
        read_only = await self.registry.read_only.is_on()
        health = await check_storage(self.driver, probe_writes=not read_only)
        if not health.ok:
            if health.cause != self._health_failure:  # once per cause, not once per probe
                log.error("health check: storage driver %s: %s (%s)", self.driver.name,
                          health.problem, health.cause)
                self._health_failure = health.cause
            failure = {f"storagedriver_{self.driver.name}": health.problem}
            return Response(503, json.dumps(failure).encode(), content_type="application/json")
        if self._health_failure is not None:
            log.info("health check: storage driver %s works again", self.driver.name)
            self._health_failure = None
        return Response(200, b"{}", content_type="application/json")

    async def lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.start_background_tasks()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
                await self.registry.aclose()
                await self.registry.index.aclose()
                for holder in (self.authenticator, self.token_issuer):
                    if holder is not None:
                        await holder.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def start_background_tasks(self) -> None:
        if self.measured:
            from dockyard.metrics import own, tally
            from dockyard.metrics.index import count_index_forever

            self._tasks.append(asyncio.create_task(tally.flush_forever()))
            self._tasks.append(asyncio.create_task(count_index_forever(
                self.registry.index, own.enable())))
        storage = self.config.storage
        purging = storage.upload_purging
        # Those that write to the store keep their schedule in read-only maintenance mode
        # (it may be switched off live) and skip their turns while it is on.
        read_only = self.registry.read_only
        if purging.enabled:
            self._tasks.append(asyncio.create_task(purge_uploads_forever(
                self.driver, self.registry.index.locks, purging.age, purging.interval,
                purging.dry_run, read_only)))
        if storage.driver != "inmemory":
            self._tasks.append(asyncio.create_task(resync_index_forever(
                self.driver, self.registry.index, storage.index_resync_interval,
                storage.sole_writer)))
        endpoints = self.config.notifications.endpoints
        if endpoints:
            from dockyard.notifications.delivery import senders_apart, start_senders

            if not senders_apart(self.config):  # else the serving process sends
                self._tasks.extend(start_senders(self.registry.index, endpoints))
        proxy = self.config.proxy
        interval = None if proxy is None else expiry_interval(proxy.upstreams)
        if proxy is not None and interval is not None:
            self._tasks.append(asyncio.create_task(expire_forever(
                self.driver, self.registry.index, proxy.upstreams, interval, read_only)))
        if storage.gc.enabled and storage.read_only and not storage.gc.dry_run:
            log.warning("storage.gc skips its collections while the store is in read-only "
                        "maintenance mode (storage.maintenance.readonly), where only dry "
                        "runs may run")
        if storage.gc.enabled:
            options = GCOptions(dry_run=storage.gc.dry_run,
                                delete_untagged=storage.gc.delete_untagged,
                                grace_period=storage.gc.grace_period,
                                upload_purge_age=purging.age if purging.enabled else None,
                                sole_writer=storage.sole_writer)
            retention = self.config.retention
            before = None
            if retention.rules:
                from dockyard.registry.retention import prune_by_policy

                if not storage.gc.delete_untagged:
                    log.warning("retention rules remove tags before each scheduled "
                                "collection, but the space is freed only where collections "
                                "delete untagged manifests (storage.gc.deleteuntagged)")

                def before() -> Awaitable[object]:
                    return prune_by_policy(self.registry, retention)
            # Every worker keeps a schedule; the lease lets one of them run at a time.
            self._tasks.append(asyncio.create_task(self.registry.gc.run_every(
                storage.gc.interval, options, storage.gc.full_pass_interval, before)))


def make_authentication(config: Config) -> tuple[Authenticator | None, TokenIssuer | None]:
    """The authenticator guarding /v2 (auth.htpasswd or auth.token; the loader allows one)
    and dockyard's own token issuer (auth.issuer) if configured."""
    if config.htpasswd is not None:
        return HtpasswdAuthenticator(config.htpasswd.realm, config.htpasswd.path,
                                     make_login_throttle(config)), None
    token = config.token
    if token is None:
        return None, None
    settings = config.token_issuer
    own_key = load_private_key(settings.key) if settings is not None else None
    verifier = TokenVerifier(token.service, token.issuer,
                             load_trusted_keys(token.rootcertbundle, token.jwks, own_key),
                             token.signing_algorithms or None)
    issuer = None
    if settings is not None and own_key is not None:
        passwords = HtpasswdAuthenticator(token.service, settings.htpasswd,
                                          make_login_throttle(config)) \
            if settings.htpasswd else None
        issuer = TokenIssuer(own_key, token.service, token.issuer, settings.expiration,
                             AccessPolicy(settings.rules, settings.groups), passwords)
    return TokenAuthenticator(token.realm, verifier), issuer


SUPERVISOR_ENV = "DOCKYARD_SUPERVISOR_PID"


def die_with_supervisor() -> None:
    """Ask Linux to end this worker if the process that started it dies (even by SIGKILL),
    so a crashed server never leaves workers holding the port."""
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if not supervisor or os.getppid() != int(supervisor) or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(supervisor):  # it died before prctl took effect
        os._exit(1)


PR_SET_PDEATHSIG = 1


def create_app(config: Config | None = None) -> Any:
    """Factory for the server's workers: settings come from the file named in the env."""
    from dockyard import logs

    die_with_supervisor()
    if config is None:
        config = load_config(os.environ.get(CONFIG_ENV) or None)
    logs.configure(config.log)
    return RegistryApp(config)
