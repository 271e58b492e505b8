"""Parsing the request details handlers share: pagination, ranges, lengths."""

from __future__ import annotations

import re

from dockyard.api.http import Request
from dockyard.registry.errors import RangeInvalid, SizeInvalid

# ASCII digits only: `\d`, str.isdigit() and int() also take other scripts' digits (and
# isdigit() superscripts, which int() then refuses).
CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?")
RANGE_RE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
NUMBER_RE = re.compile(r"[0-9]+")
# Page sizes above this are capped, so one request cannot ask for the world.
MAX_PAGE = 10_000


def pagination(request: Request) -> tuple[int | None, str | None]:
    raw = request.query_value("n")
    limit = None
    if raw is not None and raw != "":
        if not NUMBER_RE.fullmatch(raw):
            # distribution 2.8 ignores an n it cannot read (abc, -1, ²), as if none was given.
            return None, request.query_value("last") or None
        limit = min(int(raw), MAX_PAGE)
    return limit, request.query_value("last") or None


def content_length(request: Request) -> int | None:
    length = request.content_length
    if length is not None and length < 0:
        raise SizeInvalid("Content-Length is not a number")
    return length


def content_range(request: Request) -> tuple[int, int] | None:
    """A chunk's `Content-Range: <start>-<end>` (inclusive); 416 if unusable."""
    raw = request.header("content-range")
    if raw is None:
        return None
    found = CONTENT_RANGE_RE.fullmatch(raw.strip())
    if not found:
        raise RangeInvalid("Content-Range must be <start>-<end>", {"content_range": raw[:100]})
    start, end = int(found.group(1)), int(found.group(2))
    if end < start:
        raise RangeInvalid("Content-Range ends before it starts", {"content_range": raw[:100]})
    length = content_length(request)
    if length is not None and length != end - start + 1:
        raise RangeInvalid("Content-Range does not match Content-Length",
                           {"content_range": raw[:100], "content_length": length})
    return start, end


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A `Range: bytes=` request as (first, last) inclusive; None means the whole blob."""
    if header is None:
        return None
    found = RANGE_RE.fullmatch(header.strip())
    if not found or (not found.group(1) and not found.group(2)):
        if "," in header:
            return None  # several ranges: answering with the whole blob is allowed
        raise RangeInvalid("unsupported Range header", {"range": header[:100], "size": size})
    first_text, last_text = found.groups()
    if first_text:
        first = int(first_text)
        last = min(int(last_text), size - 1) if last_text else size - 1
    else:
        suffix = int(last_text)
        first, last = max(size - suffix, 0), size - 1
        if suffix == 0:
            first = size
    if first > last or first >= size:
        raise RangeInvalid("range not satisfiable", {"range": header[:100], "size": size})
    return first, last
