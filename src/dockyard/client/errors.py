"""What can go wrong talking to a registry, as exceptions the command line turns into messages."""

from __future__ import annotations


class ClientError(Exception):
    """Base of every error the registry client raises; ``str()`` is a message for people."""


class InvalidReference(ClientError, ValueError):
    """A registry, repository or image reference that does not parse."""


class Unreachable(ClientError):
    """No HTTP answer: connection refused, DNS failure, timeout, TLS failure."""


class CrossOriginRefused(ClientError):
    """The registry pointed the client (a pagination link, a redirect) at another origin,
    which would get the registry's credentials or stand in for the registry."""


class RegistryError(ClientError):
    """The registry answered with an error status."""

    def __init__(self, message: str, status: int, codes: tuple[str, ...] = (),
                 detail: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes
        self.detail = detail  # the registry's own message(s), for diagnostics


class Unauthorized(RegistryError):
    """401: no credentials, credentials rejected, or an auth scheme we do not speak."""


class Forbidden(RegistryError):
    """403: authenticated, but not allowed."""


class NotFound(RegistryError):
    """404: unknown repository, tag, manifest or blob."""


class Unsupported(RegistryError):
    """400/405 on an operation the registry refuses to do (deletes disabled, tag deletes)."""


class ManifestError(ClientError):
    """A manifest that is not what its media type says, or has an unknown media type."""
