"""Mapping domain errors to HTTP statuses and the spec's error body."""

from __future__ import annotations

from typing import Any

from dockyard.api.http import JSONResponse
from dockyard.registry import errors

STATUS_BY_CODE = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "TAG_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
    "UNAVAILABLE": 503,
    "PAGINATION_NUMBER_INVALID": 400,
    "RANGE_INVALID": 416,
}

# Subclasses whose status differs from their code's usual one.
STATUS_BY_TYPE: list[tuple[type[errors.RegistryError], int]] = [
    (errors.TooLarge, 413),
    (errors.UploadOutOfOrder, 416),
]


class HTTPError(errors.RegistryError):
    """An error decided by the HTTP layer itself (unknown route, bad header)."""

    def __init__(self, status: int, code: str, message: str, detail: Any = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message, detail)
        self.status = status
        self.code = code
        self.headers = headers or {}


def status_for(error: errors.RegistryError) -> int:
    if isinstance(error, HTTPError):
        return error.status
    for error_type, status in STATUS_BY_TYPE:
        if isinstance(error, error_type):
            return status
    return STATUS_BY_CODE.get(error.code, 400)


def error_response(error: errors.RegistryError) -> JSONResponse:
    body = {"errors": [{"code": error.code, "message": error.message, "detail": error.detail}]}
    headers = dict(error.headers) if isinstance(error, HTTPError) else {}
    return JSONResponse(status_for(error), body, headers)


def internal_error_response() -> JSONResponse:
    body = {"errors": [{"code": "UNKNOWN", "message": "internal server error", "detail": None}]}
    return JSONResponse(500, body)
