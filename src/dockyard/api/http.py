"""Small request and response types over raw ASGI (the server does the HTTP parsing)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from dockyard.registry.errors import TooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# Set in the scope by dockyard's server when a client half-closes its connection before the
# body is complete: the body then ends early, and the response can still be sent.
BODY_INCOMPLETE = "dockyard.body_incomplete"


class ClientDisconnected(Exception):
    """The client went away before sending its whole body."""


class Request:
    __slots__ = ("_body_started", "_headers", "_query", "client", "id", "method", "params",
                 "path", "receive", "scope", "user")

    def __init__(self, scope: Scope, receive: Receive, path: str, client: str = "unknown",
                 request_id: str = "") -> None:
        self.scope = scope
        self.receive = receive
        self.method: str = scope["method"]
        self.path = path
        self.client = client  # the client's address (behind a trusted proxy, the real one)
        self.id = request_id  # X-Request-Id
        # For the access log: who sent it (once authenticated) and the route's parameters.
        self.user: str | None = None
        self.params: dict[str, str] | None = None
        self._headers: dict[str, str] | None = None
        self._query: dict[str, list[str]] | None = None
        self._body_started = False

    @property
    def headers(self) -> dict[str, str]:
        if self._headers is None:
            headers: dict[str, str] = {}
            for raw_name, raw_value in self.scope["headers"]:
                name = raw_name.decode("latin-1").lower()
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            self._headers = headers
        return self._headers

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def query(self) -> dict[str, list[str]]:
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            self._query = parse_qs(raw, keep_blank_values=True)
        return self._query

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    @property
    def content_length(self) -> int | None:
        value = self.header("content-length")
        if value is None:
            return None
        value = value.strip()
        # ASCII digits only: isdigit() is also true for "\xb2" (superscript two).
        if not (value.isascii() and value.isdigit()):
            return -1  # unusable; handlers turn this into SIZE_INVALID
        return int(value)

    @property
    def may_have_body(self) -> bool:
        length = self.content_length
        if length is not None:
            return length != 0
        return "chunked" in (self.header("transfer-encoding") or "").lower()

    async def stream(self) -> AsyncIterator[bytes]:
        """The body, chunk by chunk, as it arrives: never held whole in memory."""
        if self._body_started:
            return
        self._body_started = True
        declared = self.content_length
        received = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnected()
            chunk = message.get("body", b"")
            if chunk:
                received += len(chunk)
                yield chunk
            if not message.get("more_body", False):
                if self.scope.get(BODY_INCOMPLETE) or (declared is not None
                                                       and received < declared):
                    raise ClientDisconnected()
                return

    async def read(self, limit: int) -> bytes:
        """The whole body, refusing more than `limit` bytes."""
        length = self.content_length
        if length is not None and length > limit:
            raise TooLarge(f"body is larger than {limit} bytes", {"limit": limit, "size": length})
        parts: list[bytes] = []
        size = 0
        async for chunk in self.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"body is larger than {limit} bytes", {"limit": limit})
            parts.append(chunk)
        return b"".join(parts)


Headers = list[tuple[bytes, bytes]]


class Response:
    """A complete response with a bytes body."""

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                 content_type: str | None = None) -> None:
        self.status = status
        self.body = body
        self.headers: dict[str, str] = dict(headers or {})
        if content_type is not None:
            self.headers["Content-Type"] = content_type
        self.headers.setdefault("Content-Length", str(len(body)))
        self.written = 0  # body bytes sent, for the access log

    def raw_headers(self, extra: Headers) -> Headers:
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1"))
               for name, value in self.headers.items()]
        raw.extend(extra)
        return raw

    async def send(self, send: Send, scope: Scope, extra: Headers) -> None:
        await send({"type": "http.response.start", "status": self.status,
                    "headers": self.raw_headers(extra)})
        body = b"" if scope["method"] == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})
        self.written = len(body)


def encode_json(document: Any) -> bytes:
    """Compact JSON ending in a newline, as distribution's encoder writes its answers."""
    return json.dumps(document, separators=(",", ":")).encode() + b"\n"


class JSONResponse(Response):
    def __init__(self, status: int, document: Any, headers: dict[str, str] | None = None,
                 content_type: str = "application/json") -> None:
        super().__init__(status, encode_json(document), headers, content_type)


class StreamResponse(Response):
    """A body produced chunk by chunk (Content-Length is set by the caller)."""

    def __init__(self, status: int, chunks: AsyncIterator[bytes], headers: dict[str, str]) -> None:
        super().__init__(status, b"", headers)
        if headers is None or "Content-Length" not in headers:
            del self.headers["Content-Length"]  # unknown: the server sends it chunked
        self.chunks = chunks

    async def send(self, send: Send, scope: Scope, extra: Headers) -> None:
        await send({"type": "http.response.start", "status": self.status,
                    "headers": self.raw_headers(extra)})
        if scope["method"] != "HEAD":
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self.written += len(chunk)
        await send({"type": "http.response.body", "body": b""})
