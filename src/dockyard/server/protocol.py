"""uvicorn's httptools protocol, with a registry's answers to requests it cannot parse.

uvicorn answers every parser error with the same plain-text 400 and closes at once. A
registry does better for the cases clients and scanners actually send:
- raw non-ASCII bytes in the request target (`/v2/café/...`) are percent-encoded before
  parsing, so the application refuses the name or tag with its own error code;
- an unknown method gets 405 UNSUPPORTED; a body that breaks off (bad chunked encoding,
  or a client that stops sending and half-closes) gets 400 SIZE_INVALID from the app;
- the request head is limited in size and count: 414 for the target, 431 for headers;
- a connection may not wait on its client forever (`http.timeouts`): a request head must
  arrive whole within `head` of its first byte (else 408), a connection with no request
  under way is closed after `idle`, and a body that stops arriving for `body` is cut off
  (408). Only waits on the client count: not the application's work, nor a body the
  application has not read yet.
"""

from __future__ import annotations

import asyncio
import enum
import json
import re
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dockyard.api.access_log import new_request_id
from dockyard.api.http import BODY_INCOMPLETE
from dockyard.config.model import HTTPTimeouts
from dockyard.server.header_case import CanonicalHeadTransport

# Above what any client sends (a bearer token is a few KiB); a limit keeps a slow or
# hostile client from making the parser buffer megabytes.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 256

NON_ASCII = re.compile(rb"[\x80-\xff]")
STARTS_REQUEST_LINE = re.compile(rb"[A-Z]+ ")
REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ \r\n]+ HTTP/\d\.\d\r?\n")
REASONS = {400: b"Bad Request", 405: b"Method Not Allowed", 408: b"Request Timeout",
           414: b"URI Too Long", 431: b"Request Header Fields Too Large"}


class Wait(enum.Enum):
    """What a connection is waiting for, which decides how long it may wait."""

    IDLE = "idle"  # the first byte of a request (a new or kept-alive connection)
    HEAD = "head"  # the rest of a request head; its clock runs from the first byte
    BODY = "body"  # more of a request body; its clock restarts whenever data arrives
    APP = "app"  # the application's answer: no limit here


class HeadTooLarge(Exception):
    """Raised from a parser callback; httptools reports it as a callback error."""

    def __init__(self, message: str, status: int = 431) -> None:
        super().__init__(message)
        self.status = status


class RegistryHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, timeouts: HTTPTimeouts | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading_head = True
        self.pending_head_bytes = 0
        self.header_count = 0
        self.parsed_head_bytes = 0
        self.heads_completed = 0
        self.timeouts = timeouts or HTTPTimeouts()
        self.waiting = Wait.IDLE
        self.waiting_since = 0.0  # when the current wait's clock started
        self.wait_timer: asyncio.TimerHandle | None = None

    # Waiting on the client. One timer per connection; a body's clock is moved by each
    # piece of data, and the timer only looks at it when it fires.
    def wait_for(self, what: Wait) -> None:
        self.waiting = what
        self.waiting_since = self.loop.time()
        self.arm_wait_timer(self.waiting_since)

    def arm_wait_timer(self, since: float) -> None:
        if self.wait_timer is not None:
            self.wait_timer.cancel()
            self.wait_timer = None
        if self.waiting is not Wait.APP:
            limit: float = getattr(self.timeouts, self.waiting.value)
            self.wait_timer = self.loop.call_at(since + limit, self.wait_expired)

    def wait_expired(self) -> None:
        self.wait_timer = None
        if self.transport.is_closing() or self.waiting is Wait.APP:
            return
        now = self.loop.time()
        cycle = self.cycle
        if self.waiting is Wait.BODY:
            # Not the client's delay: the application has not taken the body it has, or
            # not yet asked for it (a client expecting 100-continue waits for that).
            ours = self.flow.read_paused or (cycle is not None
                                             and cycle.waiting_for_100_continue)
        else:  # nor while an earlier request on this connection is being answered
            ours = cycle is not None and not cycle.response_complete
        if ours:
            self.waiting_since = now
        if now - self.waiting_since < getattr(self.timeouts, self.waiting.value):
            self.arm_wait_timer(self.waiting_since)
        elif self.waiting is Wait.IDLE:
            self.transport.close()
        elif self.waiting is Wait.HEAD:
            self.refuse(408, b"request head not received in time")
        elif cycle is None or cycle.response_started:
            self.transport.close()  # no second status line; connection_lost tells the app
        else:
            cycle.disconnected = True  # the application gets a disconnect
            cycle.message_event.set()
            self.refuse(408, error_body("SIZE_INVALID", "the request body stopped arriving",
                                        {"timeout_seconds": self.timeouts.body}))

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.wait_for(Wait.IDLE)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.wait_timer is not None:
            self.wait_timer.cancel()
            self.wait_timer = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        starts_pipelined = bool(self.pipeline)
        super().on_response_complete()
        self._unset_keepalive_if_required()  # the idle wait replaces uvicorn's timer
        if not starts_pipelined and self.waiting is Wait.APP:
            self.wait_for(Wait.IDLE)

    def data_received(self, data: bytes) -> None:
        if self.waiting is Wait.BODY:
            self.waiting_since = self.loop.time()
        if self.reading_head and not data.isascii():
            data = escape_request_target(data)
        self._unset_keepalive_if_required()
        in_head, heads_before = self.reading_head, self.heads_completed
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._unsupported_upgrade_warning()  # no WebSockets: served as plain HTTP
            return
        except httptools.HttpParserInvalidMethodError as error:
            if REQUEST_LINE.match(data):  # a well-formed line with a method nobody knows
                self.refuse(405, error_body("UNSUPPORTED", "the request method is not supported"))
            else:
                self.refuse_unparsable(error)
            return
        except httptools.HttpParserError as error:
            self.refuse_unparsable(error)
            return
        if in_head and self.reading_head and self.heads_completed == heads_before:
            # Still in the same request head as before this piece: count it against the limit.
            self.pending_head_bytes += len(data)
            if self.pending_head_bytes > MAX_HEAD_BYTES:
                self.refuse(431, b"request head too large")

    def refuse_unparsable(self, error: Exception) -> None:
        if isinstance(error.__context__, HeadTooLarge):
            self.refuse(error.__context__.status, str(error.__context__).encode())
        elif self.cycle is not None and self.cycle.more_body and not self.reading_head:
            # The application is reading this request's body: it must not take what came
            # so far as the whole of it, and its answer (if any) is dropped for this one.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
            if self.cycle.response_started:  # a second status line would garble the first
                self.transport.close()
                return
            self.refuse(400, error_body("SIZE_INVALID", "the request body is malformed",
                                        {"reason": str(error)[:200]}))
        else:
            self.refuse(400, b"malformed HTTP request")

    def refuse(self, status: int, body: bytes) -> None:
        """Answer at the connection level (no application involved) and close."""
        kind = b"application/json" if body.startswith(b"{") else b"text/plain; charset=utf-8"
        self.transport.write(b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                             b"X-Request-Id: %s\r\nConnection: close\r\n\r\n%s"
                             % (status, REASONS[status], kind, len(body),
                                new_request_id().encode(), body))
        self.transport.close()

    def eof_received(self) -> bool | None:  # type: ignore[override]
        # The client has sent all it will (a half-close). The write side stays open until
        # the pending response is out; a body still short of its length ends here, so the
        # application answers it (SIZE_INVALID) instead of the connection closing unanswered.
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            return None
        if cycle.more_body and not self.reading_head:
            cycle.scope[BODY_INCOMPLETE] = True  # type: ignore[literal-required]
            cycle.more_body = False
            cycle.message_event.set()
        cycle.keep_alive = False
        return True

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_count = 0
        self.parsed_head_bytes = 0
        self.wait_for(Wait.HEAD)

    def on_url(self, url: bytes) -> None:
        if self.parsed_head_bytes + len(url) > MAX_HEAD_BYTES:
            raise HeadTooLarge("request target too long", 414)
        self.count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > MAX_HEADERS:
            raise HeadTooLarge("too many request headers")
        self.count_head(len(name) + len(value) + 4)  # with ": " and CRLF
        super().on_header(name, value)

    def count_head(self, size: int) -> None:
        # A head that arrives in one piece is measured here; one spread over many pieces
        # is also cut off in data_received, before the parser has buffered all of it.
        self.parsed_head_bytes += size
        if self.parsed_head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge("request head too large")

    def on_headers_complete(self) -> None:
        self.reading_head = False
        self.pending_head_bytes = 0
        self.heads_completed += 1
        self.wait_for(Wait.BODY)  # if there is none, the message completes at once
        super().on_headers_complete()
        if self.cycle is not None:
            self.cycle.transport = CanonicalHeadTransport(  # type: ignore[assignment]
                self.transport)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_head = True
        self.pending_head_bytes = 0
        answered = self.cycle is not None and self.cycle.response_complete
        self.wait_for(Wait.IDLE if answered else Wait.APP)


def escape_request_target(data: bytes) -> bytes:
    """Percent-encode non-ASCII bytes in the request line at the start of `data`: the
    parser only takes ASCII there, and the application then names what is wrong."""
    if not STARTS_REQUEST_LINE.match(data):
        return data
    end = data.find(b"\n")
    line, rest = (data, b"") if end < 0 else (data[:end], data[end:])
    return NON_ASCII.sub(lambda byte: b"%%%02X" % byte[0][0], line) + rest


def error_body(code: str, message: str, detail: Any = None) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message, "detail": detail}]},
                      separators=(",", ":")).encode()
