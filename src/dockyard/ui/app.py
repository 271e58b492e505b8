"""The web UI's requests: who is browsing, which page, and the headers every page carries.

Served by the registry's own server under `ui.path` (default /ui). Pages are rendered on
the server and read without JavaScript; the one script only adds filtering as you type,
copy buttons and live progress. Every form that changes something carries the session's
CSRF token, and every page a strict Content-Security-Policy.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from dockyard.api.errors import HTTPError, status_for
from dockyard.api.http import Request, Response
from dockyard.auth import Authenticator
from dockyard.auth.htpasswd import HtpasswdAuthenticator
from dockyard.auth.issuer import TokenIssuer
from dockyard.config import Config
from dockyard.registry.browse import Browser
from dockyard.registry.errors import RegistryError
from dockyard.registry.registry import Registry
from dockyard.ui.render import environment
from dockyard.ui.sessions import (
    COOKIE,
    LIFETIME,
    Session,
    SessionSigner,
    cookie_header,
    new_session,
    read_cookie,
)
from dockyard.ui.viewer import AuthMode, Viewer

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".svg": "image/svg+xml"}
FORM_LIMIT = 64 * 1024


class Refused(Exception):
    """A page that cannot be shown to this person: its status and why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Page:
    """One request to the UI, as its handler sees it."""

    ui: WebUI
    request: Request
    registry: Registry
    browser: Browser
    viewer: Viewer
    session: Session
    base: str  # the UI's URL path, e.g. /ui
    form: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)  # Set-Cookie values to send

    def query(self, name: str, default: str = "") -> str:
        return (self.request.query_value(name) or default)[:500]

    def number(self, name: str, default: int) -> int:
        text = self.query(name)
        return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else default

    def url(self, path: str = "/", **query: Any) -> str:
        shown = {key: value for key, value in query.items() if value not in (None, "")}
        return self.base + path + (f"?{urlencode(shown)}" if shown else "")

    def repository_url(self, name: str, suffix: str = "", **query: Any) -> str:
        return self.url(f"/r/{quote(name)}{suffix}", **query)

    def image_url(self, name: str, reference: str) -> str:
        return self.repository_url(name, f"/-/image/{quote(reference, safe=':')}")

    def blob_url(self, name: str, digest: str) -> str:
        return self.repository_url(name, f"/-/blob/{quote(digest, safe=':')}")


Handler = Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    method: str
    handler: Handler
    changes: bool = False  # a POST: needs the CSRF token


class WebUI:
    def __init__(self, config: Config, registry: Registry, authenticator: Authenticator | None,
                 issuer: TokenIssuer | None, prefix: str) -> None:
        from dockyard.ui import actions, pages  # the handlers use this module's types

        self.config = config
        self.registry = registry
        self.browser = Browser(registry)
        self.base = prefix + config.ui.path
        self.signer = SessionSigner(registry.index)
        self.templates = environment()
        self._static: dict[str, bytes] = {}  # the package's static files, read once
        self.passwords: HtpasswdAuthenticator | None = None
        self.policy = None
        if isinstance(authenticator, HtpasswdAuthenticator):
            self.mode, self.passwords = AuthMode.HTPASSWD, authenticator
        elif issuer is not None:
            self.mode, self.passwords, self.policy = AuthMode.ISSUER, issuer.passwords, \
                issuer.policy
        elif authenticator is not None:
            self.mode = AuthMode.OUTSIDE
        else:
            self.mode = AuthMode.OPEN
        # A repository name never has a component "-", so "/-/" ends it.
        name = r"(?P<name>(?:(?!/-/).)+?)"
        self.routes = [
            Route(re.compile(r"/?"), "GET", pages.repositories),
            Route(re.compile(r"/login"), "GET", pages.login_form),
            Route(re.compile(r"/login"), "POST", actions.log_in, changes=True),
            Route(re.compile(r"/logout"), "POST", actions.log_out, changes=True),
            Route(re.compile(r"/storage"), "GET", pages.storage),
            Route(re.compile(r"/storage/gc"), "POST", actions.start_gc, changes=True),
            Route(re.compile(r"/storage/gc\.json"), "GET", pages.gc_progress),
            Route(re.compile(rf"/r/{name}"), "GET", pages.repository),
            Route(re.compile(rf"/r/{name}/-/image/(?P<reference>[^/]+)"), "GET", pages.image),
            Route(re.compile(rf"/r/{name}/-/blob/(?P<digest>[^/]+)"), "GET", pages.blob),
            Route(re.compile(rf"/r/{name}/-/tag/(?P<tag>[^/]+)/delete"), "POST",
                  actions.delete_tag, changes=True),
            Route(re.compile(rf"/r/{name}/-/manifest/(?P<digest>[^/]+)/delete"), "GET",
                  pages.confirm_manifest_delete),
            Route(re.compile(rf"/r/{name}/-/manifest/(?P<digest>[^/]+)/delete"), "POST",
                  actions.delete_manifest, changes=True),
            Route(re.compile(rf"/r/{name}/-/delete"), "GET", pages.confirm_repository_delete),
            Route(re.compile(rf"/r/{name}/-/delete"), "POST", actions.delete_repository,
                  changes=True),
        ]

    def serves(self, path: str) -> bool:
        return path == self.config.ui.path or path.startswith(self.config.ui.path + "/")

    async def handle(self, request: Request, path: str) -> Response:
        """`path`: the request's path below http.prefix."""
        below = path[len(self.config.ui.path):]
        if below.startswith("/static/"):
            return self.static(below[len("/static/"):])
        if below == "":
            return redirect(self.base + "/")
        session, fresh = await self._session(request)
        request.user = session.user  # for the access log
        page = Page(self, request, self.registry, self.browser,
                    await self.viewer(session.user), session, self.base)
        if fresh:
            page.cookies.append(cookie_header(await self.signer.encode(session),
                                              self.base + "/", self.secure(request),
                                              int(LIFETIME)))
        try:
            response = await self._dispatch(page, below)
        except Refused as refused:
            response = self.render(page, "error.html", status=refused.status,
                                   message=refused.message)
        except RegistryError as error:  # an unknown tag, a bad name, deletes disabled
            response = self.render(page, "error.html", status=status_for(error),
                                   message=error.message)
            if isinstance(error, HTTPError):
                response.headers.update(error.headers)
        for cookie in page.cookies:
            response.headers.setdefault("Set-Cookie", cookie)
        return response

    async def _dispatch(self, page: Page, below: str) -> Response:
        allowed = []
        for route in self.routes:
            found = route.pattern.fullmatch(below)
            if found is None:
                continue
            allowed.append(route.method)
            if route.method != page.request.method and not (
                    route.method == "GET" and page.request.method == "HEAD"):
                continue
            if page.viewer.must_log_in and route.handler.__name__ not in ("login_form",
                                                                           "log_in"):
                return redirect(page.url("/login", next=page.request.path))
            if route.changes:
                await self._check_form(page)
            return await route.handler(page, **found.groupdict())
        if allowed:
            raise HTTPError(405, "UNSUPPORTED", f"method {page.request.method} is not allowed "
                            "here", None, {"Allow": ", ".join(sorted(set(allowed)))})
        raise Refused(404, "There is no such page.")

    async def _session(self, request: Request) -> tuple[Session, bool]:
        found = await self.signer.decode(read_cookie(request.header("cookie"), COOKIE))
        if found is not None:
            return found, False
        return new_session(None), True

    async def start_session(self, page: Page, user: str | None) -> None:
        """A new session (and CSRF token) at every login and logout."""
        page.session = new_session(user)
        page.viewer = await self.viewer(user)
        page.cookies[:] = [cookie_header(await self.signer.encode(page.session),
                                         self.base + "/", self.secure(page.request),
                                         int(LIFETIME))]

    async def viewer(self, user: str | None) -> Viewer:
        # Read-only maintenance mode may be switched live: asked on every page.
        read_only = await self.registry.read_only.is_on()
        return Viewer(user, self.mode, self.policy,
                      self.registry.settings.delete_enabled and not read_only, read_only)

    def secure(self, request: Request) -> bool:
        return self.config.http.tls is not None or \
            (request.header("x-forwarded-proto") or "").lower() == "https"

    async def _check_form(self, page: Page) -> None:
        """A change needs a form from one of our pages: our CSRF token, and where the
        browser says which page sent it, our own origin."""
        length = page.request.content_length
        if length is not None and (length < 0 or length > FORM_LIMIT):
            raise Refused(413, "The form is too large.")
        body = await page.request.read(FORM_LIMIT)
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        page.form = {key: values[0] for key, values in fields.items()}
        origin = page.request.header("origin")
        if origin and origin != "null" and urlsplit(origin).netloc not in self._own_hosts(
                page.request):
            raise Refused(403, "This form was sent from another site.")
        if page.form.get("csrf") != page.session.csrf:
            raise Refused(403, "This form has expired or did not come from this site. "
                               "Reload the page and try again.")

    def _own_hosts(self, request: Request) -> set[str]:
        """The names this registry is reached by: the request's Host, a proxy's
        X-Forwarded-Host, and http.host."""
        hosts = {request.header("host") or ""}
        forwarded = request.header("x-forwarded-host")
        if forwarded:
            hosts.add(forwarded.split(",")[0].strip())
        if self.config.http.base_url:
            hosts.add(urlsplit(self.config.http.base_url).netloc)
        return hosts

    def render(self, page: Page, template: str, status: int = 200, **values: Any) -> Response:
        body = self.templates.get_template(template).render(
            page=page, viewer=page.viewer, csrf=page.session.csrf, now=time.time(),
            static=self.base + "/static", **values)
        return html(body, status)

    def static(self, name: str) -> Response:
        suffix = name[name.rfind("."):] if "." in name else ""
        if not re.fullmatch(r"[a-z0-9-]+\.[a-z]+", name) or suffix not in STATIC_TYPES:
            return Response(404, b"not found\n", content_type="text/plain")
        data = self._static.get(name)
        if data is None:
            try:
                data = resources.files("dockyard.ui").joinpath("static").joinpath(
                    name).read_bytes()
            except (FileNotFoundError, IsADirectoryError):
                return Response(404, b"not found\n", content_type="text/plain")
            self._static[name] = data
        return Response(200, data, {"Cache-Control": "max-age=3600",
                                    "Content-Security-Policy": "default-src 'none'"},
                        content_type=STATIC_TYPES[suffix])


def html(body: str, status: int = 200) -> Response:
    return Response(status, body.encode(), dict(SECURITY_HEADERS),
                    content_type="text/html; charset=utf-8")


def redirect(location: str) -> Response:
    return Response(303, b"", {"Location": location, "Cache-Control": "no-store"})
