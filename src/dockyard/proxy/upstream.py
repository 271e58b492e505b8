"""The pull-through cache's client of its upstream registry: manifests and blobs over the
Distribution API, authenticated as docker does it (`upstream_auth`), every failure sorted
into what the cache does about it: serve what it has (`UpstreamUnavailable`), answer
"unknown" (`UpstreamNotFound`) or "denied" (`UpstreamDenied`)."""

from __future__ import annotations

import functools
import hashlib
import json
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType

import httpx

from dockyard import __version__
from dockyard.proxy.upstream_auth import (
    DEFAULT_TOKEN_LIFETIME,
    TokenCache,
    TokenKey,
    basic_authorization,
    parse_challenges,
)
from dockyard.registry import mediatypes
from dockyard.registry.errors import DigestInvalid
from dockyard.registry.reference import Digest, is_name, is_tag

MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_ERROR_BODY_BYTES = 64 * 1024
MAX_REDIRECTS = 10
MAX_AUTH_ATTEMPTS = 3  # as sent, with a cached token or Basic, with a fresh token

# Every manifest type, so that the upstream sends an index as an index instead of picking
# one platform's image or converting it (registries that cannot serve a type refuse it).
MANIFEST_ACCEPT = ", ".join((
    mediatypes.OCI_MANIFEST, mediatypes.OCI_INDEX, mediatypes.DOCKER_MANIFEST,
    mediatypes.DOCKER_MANIFEST_LIST, mediatypes.DOCKER_SCHEMA1_SIGNED, mediatypes.DOCKER_SCHEMA1,
))
# A blob is wanted as the bytes its digest names: no transfer compression to undo.
BLOB_HEADERS = {"Accept-Encoding": "identity"}

DOCKER_HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
# docker.io is Docker Hub's name, not where its registry API answers.
DOCKER_HUB_API_HOST = "registry-1.docker.io"

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int | None]


TAG_PAGE_SIZE = 1000
MAX_TAG_PAGES = 100
MAX_TAG_PAGE_BYTES = 4 * 1024 * 1024


class UpstreamError(Exception):
    """The upstream could not give what was asked; the message names the upstream."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class UpstreamUnavailable(UpstreamError):
    """Not reachable, too slow, overloaded or failing (429, 5xx): likely to pass, so the
    cache serves what it has."""


class UpstreamNotFound(UpstreamError):
    """404: the upstream has no such repository, manifest or blob."""


class UpstreamDenied(UpstreamError):
    """401 or 403 that authentication could not get past."""


@dataclass(frozen=True, slots=True)
class UpstreamManifest:
    digest: str
    media_type: str
    size: int
    data: bytes | None  # None for a HEAD


@dataclass(frozen=True, slots=True)
class UpstreamBlob:
    size: int | None  # the Content-Length, if sent
    chunks: AsyncIterator[bytes]


def origin_of(url: httpx.URL) -> Origin:
    """Scheme, host and port: what credentials belong to (the port spelled out, so that
    ``https://h`` and ``https://h:443`` are one origin)."""
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or DEFAULT_PORTS.get(scheme)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


def _error_codes(body: bytes) -> list[str]:
    """The spec's error codes of an error body (MANIFEST_UNKNOWN...), if it has them."""
    try:
        document = json.loads(body)
    except ValueError:
        return []
    errors = document.get("errors") if isinstance(document, dict) else None
    if not isinstance(errors, list):
        return []
    return [str(error["code"]) for error in errors if isinstance(error, dict) and "code" in error]


def _describe(error: httpx.HTTPError) -> str:
    if isinstance(error, httpx.TimeoutException):
        return f"timed out ({type(error).__name__})"
    return str(error) or type(error).__name__


def _is_transient(error: httpx.HTTPError) -> bool:
    """Failures of the network or of the server, not of our request."""
    return isinstance(error, httpx.TimeoutException | httpx.NetworkError
                      | httpx.RemoteProtocolError | httpx.ProxyError)


async def _read_capped(response: httpx.Response, limit: int) -> bytes | None:
    """The body, or None as soon as it passes `limit` bytes."""
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > limit:
            return None
    return bytes(data)


def _check_reference(reference: str) -> Digest | None:
    """The digest a reference is, None for a tag; anything else is a caller's mistake."""
    if is_tag(reference):
        return None
    digest = _parse_digest(reference)
    if digest is None:
        raise ValueError(f"not a tag or digest: {reference!r}")
    return digest


def _parse_digest(text: str) -> Digest | None:
    """A digest of an algorithm we can check (sha256, sha512), else None."""
    try:
        return Digest.parse(text)
    except DigestInvalid:
        return None


def _digest_of(algorithm: str, data: bytes) -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class Upstream:
    """One upstream registry (distribution's ``proxy.remoteurl``), for concurrent use from
    one event loop; tokens and accepted Basic credentials are kept between requests."""

    def __init__(self, remoteurl: str, username: str | None = None, password: str | None = None,
                 *, timeout: float = 30.0, connect_timeout: float = 10.0,
                 verify: ssl.SSLContext | bool = True) -> None:
        self.url = remoteurl.rstrip("/")
        parsed = httpx.URL(self.url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"the upstream's URL must be http(s)://host[:port]: {remoteurl!r}")
        host = parsed.host.lower()
        self._docker_hub = host in DOCKER_HUB_HOSTS
        # Where requests go: the URL, but for Docker Hub's API host in place of docker.io.
        self.endpoint = (str(parsed.copy_with(host=DOCKER_HUB_API_HOST)).rstrip("/")
                         if host == "docker.io" else self.url)
        self._origin = origin_of(httpx.URL(self.endpoint))
        # An empty user name (a config's `username: ""`) means no credentials, as for
        # distribution.
        self._credentials = (username, password or "") if username else None
        self._tokens = TokenCache()
        # After the first challenge, what to send before being asked: the Basic credentials
        # the upstream took, or a cached token of the (realm, service) it named.
        self._basic: str | None = None
        self._token_realm: tuple[str, str | None] | None = None
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=connect_timeout), verify=verify,
            follow_redirects=False,  # followed here, so credentials stay at their origin
            headers={"User-Agent": f"dockyard/{__version__} (pull-through cache)"})

    async def __aenter__(self) -> Upstream:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    def remote_name(self, name: str) -> str:
        """The name as the upstream knows it: Docker Hub keeps its official images, which
        clients name with one component (``alpine``), under ``library/``."""
        if self._docker_hub and "/" not in name:
            return f"library/{name}"
        return name

    # -- manifests ---------------------------------------------------------------------

    async def head_manifest(self, name: str, reference: str) -> UpstreamManifest:
        remote, digest, subject = self._manifest_subject(name, reference)
        response = await self._send("HEAD", f"/v2/{remote}/manifests/{reference}", remote,
                                    subject, {"Accept": MANIFEST_ACCEPT})
        await response.aclose()
        sent_digest = _parse_digest(response.headers.get("Docker-Content-Digest", ""))
        if digest is not None and sent_digest is not None \
                and sent_digest.algorithm == digest.algorithm and sent_digest != digest:
            raise UpstreamError(f"{self._where()}: {subject}: the upstream names it "
                                f"{sent_digest}", response.status_code)
        media_type = _media_type(response.headers.get("Content-Type"))
        size = _content_length(response)
        known_digest = digest or sent_digest
        if known_digest is None or size is None \
                or media_type in mediatypes.GENERIC_CONTENT_TYPES:
            # The headers do not tell: the body does.
            manifest = await self.get_manifest(name, reference)
            return UpstreamManifest(manifest.digest, manifest.media_type, manifest.size, None)
        return UpstreamManifest(str(known_digest), media_type, size, None)

    async def get_manifest(self, name: str, reference: str) -> UpstreamManifest:
        remote, digest, subject = self._manifest_subject(name, reference)
        response = await self._send("GET", f"/v2/{remote}/manifests/{reference}", remote,
                                    subject, {"Accept": MANIFEST_ACCEPT})
        try:
            declared = _content_length(response)
            data = (None if declared is not None and declared > MAX_MANIFEST_BYTES
                    else await _read_capped(response, MAX_MANIFEST_BYTES))
        except httpx.HTTPError as error:
            raise self._transport_error(error, subject, response.url) from error
        finally:
            await response.aclose()
        if data is None:
            raise UpstreamError(f"{self._where()}: {subject} is larger than "
                                f"{MAX_MANIFEST_BYTES} bytes, too large for a manifest")
        media_type = self._manifest_media_type(response, data)
        if digest is not None:
            computed = _digest_of(digest.algorithm, data)
            if computed != reference:
                raise UpstreamError(f"{self._where()}: {subject}: the body sent has digest "
                                    f"{computed}")
            return UpstreamManifest(reference, media_type, len(data), data)
        sent_digest = _parse_digest(response.headers.get("Docker-Content-Digest", ""))
        if sent_digest is None:
            return UpstreamManifest(_digest_of("sha256", data), media_type, len(data), data)
        # The cache keeps a manifest under its digest: one the body does not have would
        # be served as the wrong content.
        computed = _digest_of(sent_digest.algorithm, data)
        if computed != str(sent_digest):
            raise UpstreamError(f"{self._where()}: {subject}: Docker-Content-Digest says "
                                f"{sent_digest}, the body sent has {computed}")
        return UpstreamManifest(computed, media_type, len(data), data)

    def _manifest_subject(self, name: str, reference: str) -> tuple[str, Digest | None, str]:
        """The remote name, the reference's digest (None for a tag) and words for messages."""
        remote = self._checked_remote_name(name)
        digest = _check_reference(reference)
        separator = "@" if digest is not None else ":"
        return remote, digest, f"manifest {remote}{separator}{reference}"

    @staticmethod
    def _manifest_media_type(response: httpx.Response, data: bytes) -> str:
        """The Content-Type; if that says only "JSON", the manifest's own mediaType."""
        media_type = _media_type(response.headers.get("Content-Type"))
        if media_type not in mediatypes.GENERIC_CONTENT_TYPES:
            return media_type
        try:
            document = json.loads(data)
        except ValueError:
            return media_type
        field = document.get("mediaType") if isinstance(document, dict) else None
        return field if isinstance(field, str) and field else media_type

    # -- tags ----------------------------------------------------------------------------

    async def tags(self, name: str) -> list[str]:
        """Every tag of the repository, following the upstream's pages (at most
        MAX_TAG_PAGES of them)."""
        remote = self._checked_remote_name(name)
        subject = f"tags of {remote}"
        found: list[str] = []
        path: str | None = f"/v2/{remote}/tags/list?n={TAG_PAGE_SIZE}"
        for _ in range(MAX_TAG_PAGES):
            if path is None:
                break
            response = await self._send("GET", path, remote, subject, {})
            try:
                body = await _read_capped(response, MAX_TAG_PAGE_BYTES)
            except httpx.HTTPError as error:
                raise self._transport_error(error, subject, response.url) from error
            finally:
                await response.aclose()
            try:
                page = json.loads(body or b"")
                found.extend(tag for tag in page.get("tags") or [] if isinstance(tag, str)
                             and is_tag(tag))
            except (ValueError, AttributeError):
                raise UpstreamError(f"{self._where()}: {subject}: not a tag list") from None
            link = response.headers.get("Link", "")
            path = None
            if link.startswith("<") and 'rel="next"' in link:
                target = response.url.join(link[1:link.index(">")])
                if origin_of(target) == origin_of(response.url):
                    path = target.raw_path.decode("ascii")
        return found

    # -- blobs ---------------------------------------------------------------------------

    async def head_blob(self, name: str, digest: str) -> int:
        remote, subject = self._blob_subject(name, digest)
        response = await self._send("HEAD", f"/v2/{remote}/blobs/{digest}", remote, subject,
                                    BLOB_HEADERS)
        await response.aclose()
        size = _content_length(response)
        if size is None:
            raise UpstreamError(f"{self._where()}: {subject}: no Content-Length",
                                response.status_code)
        return size

    @asynccontextmanager
    async def open_blob(self, name: str, digest: str) -> AsyncIterator[UpstreamBlob]:
        """The blob's body as it arrives; the response is closed when the block ends."""
        remote, subject = self._blob_subject(name, digest)
        response = await self._send("GET", f"/v2/{remote}/blobs/{digest}", remote, subject,
                                    BLOB_HEADERS)
        try:
            yield UpstreamBlob(_content_length(response), self._chunks(response, subject))
        finally:
            await response.aclose()

    async def _chunks(self, response: httpx.Response, subject: str) -> AsyncIterator[bytes]:
        try:
            # Raw: the bytes as sent, even if a server labels a gzip layer Content-Encoding.
            async for chunk in response.aiter_raw():
                yield chunk
        except httpx.HTTPError as error:
            raise self._transport_error(error, f"{subject}, in the body",
                                        response.url) from error

    def _blob_subject(self, name: str, digest: str) -> tuple[str, str]:
        remote = self._checked_remote_name(name)
        if _check_reference(digest) is None:
            raise ValueError(f"not a digest: {digest!r}")
        return remote, f"blob {remote}@{digest}"

    def _checked_remote_name(self, name: str) -> str:
        # Names go into the URL's path: one that is not a repository name could change it.
        if not is_name(name):
            raise ValueError(f"not a repository name: {name!r}")
        return self.remote_name(name)

    # -- requests ------------------------------------------------------------------------

    def _where(self, url: httpx.URL | None = None) -> str:
        """The upstream, for messages; and the server a redirect led to, if another."""
        if url is None or origin_of(url) == self._origin:
            return f"upstream {self.url}"
        return f"upstream {self.url} (redirected to {url.scheme}://{url.netloc.decode()})"

    def _transport_error(self, error: httpx.HTTPError, subject: str,
                         url: httpx.URL | None = None) -> UpstreamError:
        kind = UpstreamUnavailable if _is_transient(error) else UpstreamError
        return kind(f"{self._where(url)}: {subject}: {_describe(error)}")

    async def _send(self, method: str, path: str, remote: str, subject: str,
                    headers: dict[str, str]) -> httpx.Response:
        """`method` on the upstream's `path`, authenticated for pulling `remote`, redirects
        followed: the open (streaming) response of a success, else the error it means."""
        response, authorization = await self._authenticated(
            method, httpx.URL(self.endpoint + path), remote, subject, headers)
        redirects = 0
        while response.status_code in REDIRECT_STATUSES and "Location" in response.headers:
            await response.aclose()
            location = response.headers["Location"]
            if redirects == MAX_REDIRECTS:
                raise UpstreamError(f"{self._where()}: {subject}: more than {MAX_REDIRECTS} "
                                    "redirects")
            redirects += 1
            try:
                target = response.url.join(location)
            except httpx.InvalidURL as error:
                raise UpstreamError(f"{self._where(response.url)}: {subject}: redirected to "
                                    f"an invalid URL {location!r}") from error
            if target.scheme not in ("http", "https"):
                raise UpstreamError(f"{self._where(response.url)}: {subject}: redirected to "
                                    f"{location!r}")
            if response.status_code == 303 and method != "HEAD":
                method = "GET"
            # Another origin (S3, a CDN) gets no credentials of the upstream's.
            hop_headers = dict(headers)
            if authorization is not None and origin_of(target) == self._origin:
                hop_headers["Authorization"] = authorization
            response = await self._exchange(method, target, subject, hop_headers)
        if response.is_success:
            return response
        raise await self._status_error(response, subject)

    async def _exchange(self, method: str, url: httpx.URL, subject: str,
                        headers: dict[str, str]) -> httpx.Response:
        request = self._client.build_request(method, url, headers=headers)
        try:
            return await self._client.send(request, stream=True)
        except httpx.HTTPError as error:
            raise self._transport_error(error, subject, url) from error

    async def _status_error(self, response: httpx.Response, subject: str) -> UpstreamError:
        """The error an unsuccessful response means (the response is closed)."""
        try:
            body = await _read_capped(response, MAX_ERROR_BODY_BYTES) or b""
        except httpx.HTTPError:
            body = b""
        finally:
            await response.aclose()
        status = response.status_code
        codes = _error_codes(body)
        answer = f"{status} {response.reason_phrase}" + (f" ({', '.join(codes)})" if codes
                                                         else "")
        where = self._where(response.url)
        upstream_itself = origin_of(response.url) == self._origin
        if status == 404:
            return UpstreamNotFound(f"{where}: {subject} not found: {answer}", status)
        if status in (401, 403) and upstream_itself:
            return UpstreamDenied(f"{where}: {subject}: access denied: {answer}", status)
        # Storage the upstream redirected to refusing the URL it was given (an expired or
        # skewed signature) is the upstream's failure, not a lack of rights of ours.
        if status in (401, 403) or status == 429 or status >= 500:
            return UpstreamUnavailable(f"{where}: {subject}: {answer}", status)
        return UpstreamError(f"{where}: {subject}: unexpected answer {answer}", status)

    # -- authentication --------------------------------------------------------------------

    def _who(self) -> str:
        return f"user {self._credentials[0]!r}" if self._credentials else "anonymous access"

    async def _authenticated(self, method: str, url: httpx.URL, remote: str, subject: str,
                             headers: dict[str, str]) -> tuple[httpx.Response, str | None]:
        """Send the request; answer 401 challenges (Bearer: a token for pulling `remote`;
        Basic: the credentials). Returns the first answer that is not a 401, with the
        Authorization that got it."""
        scope = f"repository:{remote}:pull"
        authorization = self._preemptive_authorization(scope)
        fetched_fresh = False
        for _ in range(MAX_AUTH_ATTEMPTS):
            sent = {**headers, "Authorization": authorization} if authorization else headers
            response = await self._exchange(method, url, subject, sent)
            if response.status_code != 401:
                if authorization is not None and authorization.startswith("Basic "):
                    self._basic = authorization
                return response, authorization
            header = response.headers.get("WWW-Authenticate", "")
            await response.aclose()
            challenges = {challenge.scheme: challenge for challenge in parse_challenges(header)}
            bearer, basic = challenges.get("bearer"), challenges.get("basic")
            if bearer is not None:
                if fetched_fresh:
                    raise UpstreamDenied(f"{self._where()}: {subject}: a token just issued "
                                         f"for {self._who()} was refused", 401)
                realm = bearer.params.get("realm", "")
                service = bearer.params.get("service")
                key = TokenKey(realm, service, bearer.params.get("scope") or scope)
                self._token_realm, self._basic = (realm, service), None
                refused = (authorization.removeprefix("Bearer ")
                           if authorization and authorization.startswith("Bearer ") else None)
                token, fetched_fresh = await self._tokens.obtain(
                    key, functools.partial(self._fetch_token, key, subject), refused)
                authorization = f"Bearer {token}"
            elif basic is not None:
                if self._credentials is None:
                    raise UpstreamDenied(f"{self._where()}: {subject}: the upstream asks for "
                                         "credentials and none are configured", 401)
                if authorization is not None and authorization.startswith("Basic "):
                    raise UpstreamDenied(f"{self._where()}: {subject}: the credentials of "
                                         f"{self._who()} were refused", 401)
                authorization = basic_authorization(*self._credentials)
            else:
                raise UpstreamDenied(f"{self._where()}: {subject}: 401 with no challenge "
                                     f"that can be answered: {header[:200]!r}", 401)
        raise UpstreamDenied(f"{self._where()}: {subject}: still 401 after authenticating as "
                             f"{self._who()}", 401)

    def _preemptive_authorization(self, scope: str) -> str | None:
        if self._token_realm is not None:
            token = self._tokens.get(TokenKey(*self._token_realm, scope))
            return f"Bearer {token}" if token is not None else None
        return self._basic

    async def _fetch_token(self, key: TokenKey, subject: str) -> tuple[str, float]:
        """A token from the challenge's realm, for its service and scope: the one request
        besides the upstream's own that carries the credentials."""
        where = f"{self._where()}: {subject}: token server {key.realm}"
        try:
            realm = httpx.URL(key.realm)
        except httpx.InvalidURL:
            realm = None
        if realm is None or realm.scheme not in ("http", "https") or not realm.host:
            raise UpstreamError(f"{where}: the challenge's realm is not an http(s) URL")
        # A challenge may name several scopes, space-separated: one parameter each.
        params: dict[str, str | list[str]] = {"scope": key.scope.split()}
        if key.service:
            params["service"] = key.service
        headers = ({"Authorization": basic_authorization(*self._credentials)}
                   if self._credentials else {})
        try:
            response = await self._client.get(realm, params=params, headers=headers)
        except httpx.HTTPError as error:
            kind = UpstreamUnavailable if _is_transient(error) else UpstreamError
            raise kind(f"{where}: {_describe(error)}") from error
        status = response.status_code
        if status in (401, 403):
            raise UpstreamDenied(f"{where} refused {self._who()}: {status}", status)
        if status == 429 or status >= 500:
            raise UpstreamUnavailable(f"{where}: {status} {response.reason_phrase}", status)
        try:
            document = response.json() if status == 200 else None
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise UpstreamError(f"{where}: no token in its answer ({status})", status)
        token = document.get("token") or document.get("access_token")
        if not isinstance(token, str):
            raise UpstreamError(f"{where}: no token in its answer", status)
        lifetime = document.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        return token, float(lifetime)
