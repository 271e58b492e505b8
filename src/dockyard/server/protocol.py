"""uvicorn's httptools protocol, with a registry's answers to requests it cannot parse.

uvicorn answers every parser error with the same plain-text 400 and closes at once. A
registry does better for the cases clients and scanners actually send:
- raw non-ASCII bytes in the request target (`/v2/café/...`) are percent-encoded before
  parsing, so the application refuses the name or tag with its own error code;
- an unknown method gets 405 UNSUPPORTED; a body that breaks off (bad chunked encoding,
  or a client that stops sending and half-closes) gets 400 SIZE_INVALID from the app;
- the request head is limited in size and count: 414 for the target, 431 for headers.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from dockyard.api.http import BODY_INCOMPLETE

# Above what any client sends (a bearer token is a few KiB); a limit keeps a slow or
# hostile client from making the parser buffer megabytes.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 256

NON_ASCII = re.compile(rb"[\x80-\xff]")
STARTS_REQUEST_LINE = re.compile(rb"[A-Z]+ ")
REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^ \r\n]+ HTTP/\d\.\d\r?\n")
REASONS = {400: b"Bad Request", 405: b"Method Not Allowed", 414: b"URI Too Long",
           431: b"Request Header Fields Too Large"}


class HeadTooLarge(Exception):
    """Raised from a parser callback; httptools reports it as a callback error."""

    def __init__(self, message: str, status: int = 431) -> None:
        super().__init__(message)
        self.status = status


class RegistryHttpProtocol(HttpToolsProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reading_head = True
        self.pending_head_bytes = 0
        self.header_count = 0
        self.parsed_head_bytes = 0
        self.heads_completed = 0

    def data_received(self, data: bytes) -> None:
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
        self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n"
                             b"connection: close\r\n\r\n%s"
                             % (status, REASONS[status], kind, len(body), body))
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
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.reading_head = True
        self.pending_head_bytes = 0


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
