"""HTTP/1.1 spoken byte by byte over a socket, for requests no well-behaved client sends:
dot segments and raw non-ASCII bytes in paths, broken framing, oversized headers."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass
class RawResponse:
    status: int | None  # None: the server closed the connection without answering
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def build_request(method: str, target: bytes | str, host: str,
                  headers: Iterable[tuple[str, bytes | str]] = (), body: bytes | None = None
                  ) -> bytes:
    """A request sent exactly as given: the target is not normalised or escaped, and
    Content-Length is added only for a body when the headers name no framing."""
    raw_target = target.encode() if isinstance(target, str) else target
    lines = [method.encode() + b" " + raw_target + b" HTTP/1.1", b"Host: " + host.encode(),
             b"Connection: close"]
    names = set()
    for name, value in headers:
        names.add(name.lower())
        lines.append(name.encode() + b": " + (value.encode() if isinstance(value, str)
                                               else value))
    if body is not None and not names & {"content-length", "transfer-encoding"}:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def exchange(host: str, request: bytes, half_close: bool = False, timeout: float = 30
             ) -> RawResponse:
    """Send `request`, optionally shut our side for writing (a body that ends early), and
    read the answer until the server closes the connection."""
    address, port = host.rsplit(":", 1)
    received = bytearray()
    with socket.create_connection((address, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(request)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading everything sent
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
    return parse_response(bytes(received))


def parse_response(data: bytes) -> RawResponse:
    """The first response in `data` (a server may answer leftover bytes as another)."""
    if not data:
        return RawResponse(None, {}, b"")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    length = headers.get("content-length", "")
    if length.isdigit():
        body = body[:int(length)]
    return RawResponse(status, headers, body)
