"""`RegistryClient`: the Distribution API calls the management commands need, over httpx."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any
from urllib.parse import urljoin

import httpx

from dockyard.client.auth import Credentials, RegistryAuth, UnsupportedChallenge
from dockyard.client.errors import (
    CrossOriginRefused,
    Forbidden,
    NotFound,
    RegistryError,
    Unauthorized,
    Unreachable,
    Unsupported,
)
from dockyard.client.manifests import MANIFEST_ACCEPT, Manifest, sha256_digest
from dockyard.client.origin import origin_of, origin_text
from dockyard.client.reference import DIGEST, Registry

DEFAULT_PAGE_SIZE = 100
DEFAULT_TIMEOUT = 30.0
MAX_REDIRECTS = 10


def _error_details(response: httpx.Response) -> tuple[tuple[str, ...], str]:
    """The spec error codes and messages of a response, if its body has them."""
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        return (), response.text.strip()[:200]
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return (), ""
    codes = tuple(str(e.get("code", "")) for e in errors if isinstance(e, dict))
    messages = "; ".join(str(e.get("message", "")) for e in errors
                         if isinstance(e, dict) and e.get("message"))
    return codes, messages


def next_link(response: httpx.Response) -> str | None:
    """The ``rel="next"`` target of a ``Link`` header (RFC 8288), resolved against the request."""
    for value in response.headers.get_list("link"):
        for part in value.split(","):
            target, _, params = part.strip().partition(";")
            target = target.strip()
            if not (target.startswith("<") and target.endswith(">")):
                continue
            rels = [p.split("=", 1)[1].strip().strip('"').lower()
                    for p in params.split(";") if p.strip().lower().startswith("rel=")]
            if any("next" in rel.split() for rel in rels):
                return urljoin(str(response.request.url), target[1:-1])
    return None


def last_modified(response: httpx.Response) -> datetime | None:
    """``Last-Modified`` as an aware UTC datetime; None when absent or unreadable. dockyard
    sends it on manifests (when the tag or manifest was pushed); distribution does not."""
    value = response.headers.get("Last-Modified")
    if not value:
        return None
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class ManifestHead:
    digest: str
    pushed: datetime | None


class RegistryClient:
    """One registry; methods raise `dockyard.client.errors.ClientError` subclasses.

    ``verify`` is httpx's: True, False, an `ssl.SSLContext`, or a CA bundle path.
    """

    def __init__(self, registry: Registry, credentials: Credentials | None = None,
                 verify: bool | str | ssl.SSLContext = True, timeout: float = DEFAULT_TIMEOUT,
                 page_size: int = DEFAULT_PAGE_SIZE) -> None:
        self.registry = registry
        self.credentials = credentials
        self.page_size = page_size
        self.origin = origin_of(registry.url)
        self._auth = RegistryAuth(credentials, self.origin)
        verify_arg: bool | ssl.SSLContext = (
            ssl.create_default_context(cafile=verify) if isinstance(verify, str) else verify)
        # Redirects are followed by `request`, which decides which may leave the origin.
        self._http = httpx.Client(base_url=registry.url, auth=self._auth, verify=verify_arg,
                                  timeout=timeout, follow_redirects=False,
                                  headers={"User-Agent": "dockyard-client"},
                                  event_hooks={"request": [self._credentials_stay_home]})

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- transport ------------------------------------------------------------------------

    def _credentials_stay_home(self, request: httpx.Request) -> None:
        """The last word before anything is sent: no Authorization leaves the registry's
        origin (httpx itself keeps it on an http-to-https redirect to the same host)."""
        if origin_of(request.url) != self.origin:
            request.headers.pop("Authorization", None)

    def _refuse_other_origin(self, url: str, how: str) -> None:
        if origin_of(url) != self.origin:
            raise CrossOriginRefused(
                f"{how} another origin ({url}), not {self.registry.host} "
                f"({origin_text(self.origin)}); refusing to follow it")

    def request(self, method: str, url: str, what: str, *,
                headers: dict[str, str] | None = None,
                params: dict[str, Any] | None = None,
                may_leave_origin: bool = False) -> httpx.Response:
        """Send one request; turn transport failures and error statuses into exceptions.

        ``what`` names the object for messages (``repository x``, ``manifest x:y``).
        Redirects are followed within the registry's origin; to another origin only with
        ``may_leave_origin`` (blob downloads, which the spec lets registries hand to a CDN
        or object store), and then without credentials.
        """
        if httpx.URL(url).is_absolute_url:
            self._refuse_other_origin(url, f"{what}: asked to send {method} to")
        try:
            response = self._http.request(method, url, headers=headers, params=params)
            redirects = 0
            while response.next_request is not None:
                target = response.next_request
                response.close()
                if not may_leave_origin:
                    self._refuse_other_origin(
                        str(target.url), f"{what}: the registry redirected {method} to")
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects",
                                        response.status_code)
                response = self._http.send(target)
        except UnsupportedChallenge as error:
            raise Unauthorized(
                f"{self.registry.host} asks for {', '.join(error.schemes)} authentication, "
                "which this client does not support yet (only Basic)", 401) from None
        except httpx.TransportError as error:
            raise Unreachable(self._transport_message(error)) from None
        if response.status_code < 400:
            return response
        raise self._status_error(response, method, what)

    def _transport_message(self, error: httpx.TransportError) -> str:
        where = f"{self.registry.host} ({self.registry.url})"
        text = str(error) or type(error).__name__
        if isinstance(error, httpx.TimeoutException):
            return f"registry {where} did not answer in time ({text})"
        hint = ""
        lowered = text.lower()
        if "certificate" in lowered:
            hint = " (pass --ca-cert FILE for a private CA, or --insecure)"
        elif "wrong_version_number" in lowered or "record layer" in lowered:
            hint = " (it may speak plain HTTP: pass --insecure or an http:// prefix)"
        elif isinstance(error, httpx.RemoteProtocolError) and self.registry.scheme == "http":
            hint = " (it may speak HTTPS: drop --insecure or use an https:// prefix)"
        return f"cannot reach registry {where}: {text}{hint}"

    def _status_error(self, response: httpx.Response, method: str, what: str) -> RegistryError:
        status = response.status_code
        codes, detail = _error_details(response)
        said = f" ({', '.join(c for c in codes if c)}: {detail})" if codes else (
            f" ({detail})" if detail else "")
        if status == 401:
            if self._auth.sent_credentials and self.credentials is not None:
                message = (f"{self.registry.host} refused the credentials of user "
                           f"{self.credentials.username!r} (from {self.credentials.source})")
            else:
                message = (f"{self.registry.host} requires authentication: pass --username "
                           "and --password, set DOCKYARD_USERNAME and DOCKYARD_PASSWORD, or "
                           "log in with docker login")
            return Unauthorized(message, status, codes, detail)
        if status == 403:
            return Forbidden(f"{self.registry.host} denied access to {what}{said}",
                             status, codes, detail)
        if status == 404:
            return NotFound(f"{what} not found on {self.registry.host}{said}",
                            status, codes, detail)
        if method == "DELETE" and (status == 405 or "UNSUPPORTED" in codes or status == 400):
            return Unsupported(f"{self.registry.host} refused to delete {what}: "
                               f"{status} {response.reason_phrase}{said}", status, codes, detail)
        return RegistryError(f"{method} {what} failed: {status} {response.reason_phrase}{said}",
                             status, codes, detail)

    def _pages(self, path: str, what: str, key: str) -> Iterator[str]:
        """Follow ``Link: <...>; rel="next"`` from ``path``, yielding ``body[key]`` items."""
        url: str | None = path
        params: dict[str, Any] | None = {"n": self.page_size} if self.page_size else None
        seen: set[str] = set()
        while url is not None:
            response = self.request("GET", url, what, params=params)
            params = None  # the next link carries its own query
            try:
                body = response.json()
            except ValueError:
                raise RegistryError(f"{what}: the registry answered something not JSON",
                                    response.status_code) from None
            items = body.get(key) if isinstance(body, dict) else None
            yield from (str(item) for item in items or [])  # distribution: "tags": null
            url = next_link(response)
            if url is not None:
                self._refuse_other_origin(url, f"{what}: the registry's next-page link points to")
                if url in seen:
                    raise RegistryError(f"{what}: the registry's pagination loops ({url})",
                                        response.status_code)
                seen.add(url)

    # -- API ------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: reachable, speaks the API, and lets us in."""
        self.request("GET", "/v2/", "the registry API (/v2/)")

    def catalog(self) -> list[str]:
        """Every repository name, sorted (all pages)."""
        return sorted(set(self._pages("/v2/_catalog", "the catalog", "repositories")))

    def tags(self, repository: str) -> list[str]:
        """Every tag, sorted (all pages; distribution 2.8 lists them unsorted)."""
        return sorted(set(self._pages(f"/v2/{repository}/tags/list",
                                      f"repository {repository}", "tags")))

    def resolve(self, repository: str, reference: str) -> str:
        """The digest a tag (or digest) points at, by ``HEAD`` on the manifest."""
        return self.head(repository, reference).digest

    def head(self, repository: str, reference: str) -> ManifestHead:
        """The digest a tag (or digest) points at and when it was pushed, by ``HEAD``."""
        response = self.request("HEAD", f"/v2/{repository}/manifests/{reference}",
                                _manifest_what(repository, reference),
                                headers={"Accept": MANIFEST_ACCEPT})
        digest = response.headers.get("Docker-Content-Digest")
        pushed = last_modified(response)
        if digest:
            return ManifestHead(str(digest), pushed)
        if DIGEST.fullmatch(reference):
            return ManifestHead(reference, pushed)
        return ManifestHead(self.manifest(repository, reference).digest, pushed)

    def manifest(self, repository: str, reference: str) -> Manifest:
        response = self.request("GET", f"/v2/{repository}/manifests/{reference}",
                                _manifest_what(repository, reference),
                                headers={"Accept": MANIFEST_ACCEPT})
        data = response.content
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        if not media_type or media_type in ("application/json", "application/octet-stream"):
            try:
                document = json.loads(data)
            except ValueError:
                document = None
            if isinstance(document, dict) and isinstance(document.get("mediaType"), str):
                media_type = document["mediaType"]
        digest = response.headers.get("Docker-Content-Digest") or (
            reference if DIGEST.fullmatch(reference) else sha256_digest(data))
        return Manifest(data, digest, media_type, last_modified(response))

    def blob_size(self, repository: str, digest: str) -> int:
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}",
                                f"blob {digest} in {repository}", may_leave_origin=True)
        return int(response.headers.get("Content-Length", "0"))

    def blob(self, repository: str, digest: str) -> bytes:
        return self.request("GET", f"/v2/{repository}/blobs/{digest}",
                            f"blob {digest} in {repository}", may_leave_origin=True).content

    def delete_manifest(self, repository: str, reference: str) -> None:
        """``DELETE /v2/<name>/manifests/<reference>``; `Unsupported` when refused."""
        self.request("DELETE", f"/v2/{repository}/manifests/{reference}",
                     _manifest_what(repository, reference))


def _manifest_what(repository: str, reference: str) -> str:
    separator = "@" if ":" in reference else ":"
    return f"manifest {repository}{separator}{reference}"
