"""A small client for any Distribution (registry v2 / OCI) registry, over HTTP.

It is what ``dockyard ls/tags/inspect/rm/du`` use, and it depends on nothing of dockyard's
server side: `reference` parses ``host:port/name:tag``, `auth` finds credentials and answers
challenges, `registry` holds `RegistryClient` (the API calls, pagination and errors as
exceptions), and `operations` builds inspect, disk usage and removal on top.
"""

from dockyard.client.auth import Credentials, find_credentials
from dockyard.client.errors import (
    ClientError,
    CrossOriginRefused,
    Forbidden,
    InvalidReference,
    ManifestError,
    NotFound,
    RegistryError,
    Unauthorized,
    Unreachable,
    Unsupported,
)
from dockyard.client.reference import Reference, Registry, parse_image, parse_reference
from dockyard.client.registry import RegistryClient

__all__ = [
    "ClientError",
    "Credentials",
    "CrossOriginRefused",
    "Forbidden",
    "InvalidReference",
    "ManifestError",
    "NotFound",
    "Reference",
    "Registry",
    "RegistryClient",
    "RegistryError",
    "Unauthorized",
    "Unreachable",
    "Unsupported",
    "find_credentials",
    "parse_image",
    "parse_reference",
]
