"""Request ids and the access log line, under distribution's field names (`http.request.*`,
`http.response.*`, `auth.user.name`, `vars.*`) so log pipelines built for it keep working."""

from __future__ import annotations

import logging
import os
import re

from dockyard.api.http import Request, Response

log = logging.getLogger("dockyard.http")

# An incoming X-Request-Id is kept only if it is a short run of visible token characters
# (what tracing systems send: UUIDs, hex, `Root=1-...;Sampled=1`): anything else could
# forge log fields or smuggle text into responses, and is replaced by a fresh id.
SANE_REQUEST_ID = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z:/=;@-]{1,200}")
UUID_VARIANTS = "89ab"

# Route parameters, under the names distribution logs them with.
VARS = (("name", "vars.name"), ("reference", "vars.reference"), ("digest", "vars.digest"),
        ("upload_id", "vars.uuid"))


def new_request_id() -> str:
    """A random UUID (version 4), made without the uuid module's overhead."""
    h = os.urandom(16).hex()
    return (f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{UUID_VARIANTS[int(h[16], 16) & 3]}{h[17:20]}"
            f"-{h[20:]}")


def request_id(incoming: str | None) -> str:
    if incoming is not None and SANE_REQUEST_ID.fullmatch(incoming):
        return incoming
    return new_request_id()


def go_duration(seconds: float) -> str:
    """A duration as Go prints one (`850µs`, `1.5ms`, `2.25s`, `1m3s`), as distribution
    logs `http.response.duration`."""
    nanoseconds = round(seconds * 1e9)
    if nanoseconds < 1000:
        return f"{nanoseconds}ns"
    if nanoseconds < 1_000_000:
        return _trimmed(nanoseconds / 1e3, 3) + "µs"
    if nanoseconds < 1_000_000_000:
        return _trimmed(nanoseconds / 1e6, 6) + "ms"
    minutes, rest = divmod(nanoseconds, 60_000_000_000)
    hours, minutes = divmod(minutes, 60)
    text = _trimmed(rest / 1e9, 9) + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


def _trimmed(value: float, digits: int) -> str:
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def log_access(request: Request, response: Response, duration: float) -> None:
    # (Called only with the access log enabled: nothing is built otherwise.)
    """One line per request: method, path and status as the message, the rest as fields."""
    scope = request.scope
    query = scope.get("query_string")
    uri = scope.get("raw_path") or scope["path"].encode()
    if query:
        uri += b"?" + query
    fields: dict[str, object] = {
        "http.request.method": request.method,
        "http.request.uri": uri.decode("latin-1"),
        "http.request.remoteaddr": request.client,
        "http.request.useragent": request.header("user-agent") or "",
        "http.request.id": request.id,
        "http.response.status": response.status,
        "http.response.written": response.written,
        "http.response.duration": go_duration(duration),
    }
    if request.user is not None:
        fields["auth.user.name"] = request.user
    if request.params:
        for param, name in VARS:
            value = request.params.get(param)
            if value is not None:
                fields[name] = value
    # The record is made directly: Logger.info would also look up the caller's frame,
    # which costs more than the line itself on the hot path.
    record = logging.LogRecord(log.name, logging.INFO, __file__, 0, "%s %s %d",
                               (request.method, scope["path"], response.status), None)
    record.fields = fields
    log.handle(record)
