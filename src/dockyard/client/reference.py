"""Parsing `host:port/name:tag` and `host:port/name@digest`, and the registry's base URL.

Unlike docker, the first component is always the registry (there is no default registry):
`localhost:5000/library/busybox:1.36`. An explicit `http://` or `https://` in front picks the
scheme; otherwise it is https, or http with ``insecure``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dockyard.client.errors import InvalidReference

# The distribution spec's grammar for names, tags and digests.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
DIGEST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
SHA256 = re.compile(r"sha256:[a-f0-9]{64}")
_HOST = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class Registry:
    """Where a registry is: ``host`` as written (``host:port``) and the scheme to use."""

    host: str
    scheme: str  # "https" or "http"
    explicit_scheme: bool = False

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}"


@dataclass(frozen=True)
class Reference:
    """A repository in a registry, optionally with a tag or a digest."""

    registry: Registry
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str | None:
        """What goes after ``/manifests/``: the digest if there is one, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        text = f"{self.registry.host}/{self.repository}"
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def with_reference(self, reference: str) -> Reference:
        if DIGEST.fullmatch(reference):
            return Reference(self.registry, self.repository, None, reference)
        return Reference(self.registry, self.repository, reference, None)


def _split_scheme(text: str, insecure: bool) -> tuple[str, str, bool]:
    for scheme in ("http", "https"):
        prefix = f"{scheme}://"
        if text.lower().startswith(prefix):
            return scheme, text[len(prefix):], True
    return ("http" if insecure else "https"), text, False


def parse_registry(text: str, insecure: bool = False) -> Registry:
    """``host[:port]``, optionally with ``http://`` or ``https://`` and a trailing ``/``."""
    scheme, rest, explicit = _split_scheme(text.strip(), insecure)
    rest = rest.rstrip("/")
    if not _HOST.fullmatch(rest):
        raise InvalidReference(f"{text!r} is not a registry address (expected host:port)")
    if ":" in rest.rsplit("]", 1)[-1]:
        port = int(rest.rsplit(":", 1)[1])
        if not 0 < port < 65536:
            raise InvalidReference(f"{text!r}: port {port} is out of range")
    return Registry(rest, scheme, explicit)


def parse_reference(text: str, insecure: bool = False, *, require_repository: bool = True
                    ) -> Reference | Registry:
    """``REGISTRY/REPO[:TAG][@DIGEST]``; with ``require_repository=False`` a bare registry
    gives a `Registry`."""
    scheme, rest, explicit = _split_scheme(text.strip(), insecure)
    host, slash, path = rest.partition("/")
    registry = parse_registry(f"{scheme}://{host}" if explicit else host, insecure)
    if not slash or not path:
        if require_repository:
            raise InvalidReference(f"{text!r}: expected REGISTRY/REPOSITORY (for example "
                                  "localhost:5000/library/busybox:latest)")
        return registry
    digest: str | None = None
    if "@" in path:
        path, digest = path.split("@", 1)
        if not DIGEST.fullmatch(digest):
            raise InvalidReference(f"{text!r}: {digest!r} is not a digest (algorithm:hex)")
    tag: str | None = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not TAG.fullmatch(tag):
            raise InvalidReference(f"{text!r}: {tag!r} is not a valid tag")
    if not NAME.fullmatch(path):
        raise InvalidReference(
            f"{text!r}: {path!r} is not a valid repository name (lower-case letters, digits "
            "and separators . _ __ - between components joined by /)")
    return Reference(registry, path, tag, digest)


def parse_image(text: str, insecure: bool = False) -> Reference:
    """A reference that must name a repository (tag and digest optional)."""
    parsed = parse_reference(text, insecure)
    assert isinstance(parsed, Reference)
    return parsed
