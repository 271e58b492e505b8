"""Building the URLs the registry hands back in Location and Link headers."""

from __future__ import annotations

import re

from dockyard.api.http import Request

SCHEMES = ("http", "https")
# host[:port]: a name, an IPv4 address or a bracketed IPv6 one. Anything else in Host or a
# forwarding header is ignored rather than echoed into Location.
HOST_RE = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9._-]*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class URLBuilder:
    """Absolute URLs from http.host, or from the request (honouring X-Forwarded-* and
    Forwarded from a reverse proxy), or relative paths when http.relativeurls is set."""

    def __init__(self, request: Request, prefix: str, base_url: str, relative: bool) -> None:
        self.request = request
        self.prefix = prefix
        self.base_url = base_url
        self.relative = relative

    def origin(self) -> str:
        if self.base_url:
            return self.base_url
        if self.relative:
            return ""
        headers = self.request.headers
        schemes: list[str] = []  # candidates, most trusted last
        hosts = [headers.get("host", "")]
        forwarded = headers.get("forwarded")
        if forwarded:
            first = forwarded.split(",")[0]
            for pair in first.split(";"):
                key, _, value = pair.strip().partition("=")
                value = value.strip('"')
                if key.lower() == "proto":
                    schemes.append(value)
                elif key.lower() == "host":
                    hosts.append(value)
        if headers.get("x-forwarded-proto"):
            schemes.append(headers["x-forwarded-proto"].split(",")[0].strip())
        if headers.get("x-forwarded-host"):
            hosts.append(headers["x-forwarded-host"].split(",")[0].strip())
        # The last usable value wins; garbage in a header falls back to the one before.
        scheme = next((value.lower() for value in reversed(schemes)
                       if value.lower() in SCHEMES), self.request.scope.get("scheme", "http"))
        host = next((value for value in reversed(hosts) if HOST_RE.fullmatch(value)), "")
        if not host:
            server = self.request.scope.get("server")
            host = f"{server[0]}:{server[1]}" if server else "localhost"
        return f"{scheme}://{host}"

    def path(self, path: str) -> str:
        return f"{self.origin()}{self.prefix}{path}"

    def blob(self, name: str, digest: str) -> str:
        return self.path(f"/v2/{name}/blobs/{digest}")

    def upload(self, name: str, upload_id: str) -> str:
        return self.path(f"/v2/{name}/blobs/uploads/{upload_id}")

    def manifest(self, name: str, reference: str) -> str:
        return self.path(f"/v2/{name}/manifests/{reference}")
