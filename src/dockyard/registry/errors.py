"""Domain errors. Each carries the distribution-spec error code it corresponds to."""

from __future__ import annotations

from typing import Any


class RegistryError(Exception):
    """Base class: `code` is the spec's error code, `detail` extra machine-readable context."""

    code = "UNKNOWN"
    default_message = "unknown error"

    def __init__(self, message: str | None = None, detail: Any = None) -> None:
        self.message = message or self.default_message
        self.detail = detail
        super().__init__(self.message)


class BlobUnknown(RegistryError):
    code = "BLOB_UNKNOWN"
    default_message = "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code = "BLOB_UPLOAD_INVALID"
    default_message = "blob upload invalid"


class BlobUploadUnknown(RegistryError):
    code = "BLOB_UPLOAD_UNKNOWN"
    default_message = "blob upload unknown to registry"


class UploadOutOfOrder(BlobUploadInvalid):
    """A chunk whose Content-Range does not start where the upload ends."""

    default_message = "chunk does not start at the end of the upload"


class DigestInvalid(RegistryError):
    code = "DIGEST_INVALID"
    default_message = "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    code = "MANIFEST_BLOB_UNKNOWN"
    default_message = "manifest references a manifest or blob unknown to registry"


class ManifestInvalid(RegistryError):
    code = "MANIFEST_INVALID"
    default_message = "manifest invalid"


class ManifestUnknown(RegistryError):
    code = "MANIFEST_UNKNOWN"
    default_message = "manifest unknown to registry"


class NameInvalid(RegistryError):
    code = "NAME_INVALID"
    default_message = "invalid repository name"


class NameUnknown(RegistryError):
    code = "NAME_UNKNOWN"
    default_message = "repository name not known to registry"


class SizeInvalid(RegistryError):
    code = "SIZE_INVALID"
    default_message = "provided length did not match content length"


class TooLarge(SizeInvalid):
    """Content over a configured limit (a manifest over the size limit)."""

    default_message = "content is larger than the registry accepts"


class TooManyRequests(RegistryError):
    code = "TOOMANYREQUESTS"
    default_message = "too many requests"


class Unavailable(RegistryError):
    """Something the registry depends on (an upstream it caches) cannot answer now."""

    code = "UNAVAILABLE"
    default_message = "service unavailable"


class TagInvalid(RegistryError):
    code = "TAG_INVALID"
    default_message = "manifest tag did not match URI"


class Unsupported(RegistryError):
    code = "UNSUPPORTED"
    default_message = "the operation is unsupported"


class ReadOnly(Unsupported):
    default_message = "the registry is in read-only maintenance mode"


class PaginationInvalid(RegistryError):
    code = "PAGINATION_NUMBER_INVALID"
    default_message = "invalid number of results requested"


class RangeInvalid(RegistryError):
    code = "RANGE_INVALID"
    default_message = "invalid content range"
