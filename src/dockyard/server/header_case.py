"""Response header names in the capitalisation distribution (Go's net/http) sends.

HTTP/1.1 header names are case-insensitive, but people drive registries with curl, grep and
awk: `curl -v ... | grep Docker-Content-Digest | awk '{print $3}'` finds nothing in
`docker-content-digest: sha256:...`. uvicorn writes every header name in lower case, so the
head of each response is rewritten on its way to the socket, the way Go writes names:
the first letter and each letter after a hyphen upper case, the rest lower case
(`Docker-Content-Digest`, `Www-Authenticate`, `Etag`, `Oci-Subject`).
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

STATUS_LINE_START = b"HTTP/1.1 "


@lru_cache(maxsize=1024)
def canonical_name(name: bytes) -> bytes:
    return b"-".join(part[:1].upper() + part[1:].lower() for part in name.split(b"-"))


def canonical_head(head: bytes) -> bytes:
    """A response head (status line, header lines, blank line) with canonical names; the
    values, and anything after the head, are left as they are."""
    end = head.find(b"\r\n\r\n")
    if end < 0:
        return head
    lines = head[:end].split(b"\r\n")
    for number in range(1, len(lines)):
        name, colon, value = lines[number].partition(b":")
        if colon:
            lines[number] = canonical_name(name) + b":" + value
    return b"\r\n".join(lines) + head[end:]


class CanonicalHeadTransport:
    """Stands in for one request's transport: its response head goes out with canonical
    header names, everything else (interim 100 Continue, the body) untouched."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head_sent = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        # A 1xx interim answer (100 Continue) comes before the head, and is left alone.
        if not self._head_sent and bytes(data[:9]) == STATUS_LINE_START \
                and bytes(data[9:10]) != b"1":
            self._head_sent = True
            data = canonical_head(bytes(data))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)
