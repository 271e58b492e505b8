"""What every S3 request shares: telling its errors apart, logging it, reading its times."""

from __future__ import annotations

import email.utils
import io
import logging
from datetime import UTC, datetime
from typing import Any

from dockyard.storage.s3.settings import NOT_FOUND_CODES

log = logging.getLogger("dockyard.storage.s3")


def error_code(error: Exception) -> str | None:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code is not None else None
    return None


def is_not_found(error: Exception) -> bool:
    return error_code(error) in NOT_FOUND_CODES


def range_length(value: object) -> int | None:
    """The length of a `bytes=first-last` range, None for any other."""
    if isinstance(value, str) and value.startswith("bytes="):
        first, _, last = value[len("bytes="):].partition("-")
        if first.isdigit() and last.isdigit():
            return int(last) - int(first) + 1
    return None


def log_request(params: dict[str, Any], model: Any, **_: Any) -> None:
    """One line per S3 request: the operation, its key, and the bytes it sends, reads or
    copies where the request says (a body, a `Range`, a `CopySourceRange`)."""
    body = params.get("Body")
    if isinstance(body, io.BytesIO):  # botocore wraps some bodies before this is called
        body = body.getbuffer()
    size = len(body) if isinstance(body, bytes | bytearray | memoryview) else (
        range_length(params.get("Range")) or range_length(params.get("CopySourceRange")))
    log.info("s3 request %s key=%s bytes=%s", model.name, params.get("Key", ""),
             "-" if size is None else size)



def parse_timestamp(value: str) -> datetime:
    """S3's times: ISO 8601 in listings (thousands a page, which botocore's general parser
    takes most of a listing's CPU to read), HTTP dates in headers."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return email.utils.parsedate_to_datetime(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)

