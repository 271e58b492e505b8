"""The referrers of a manifest: manifests in the repository whose `subject` names it.

Referrers can carry large annotations (a manifest may be megabytes of them), so the list is
served in pages of a bounded encoded size, read from the index one row at a time; the
spec's Link header leads to the next page. A referrer whose descriptor alone exceeds the
budget is served as a page of its own, annotations intact (the spec requires them): its
size is bounded by the largest manifest the registry accepts.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from dataclasses import dataclass

from dockyard.index.base import Index, ReferrerRow
from dockyard.registry import mediatypes
from dockyard.registry.reference import Digest

PAGE_BYTES = 4 * 1024 * 1024
_HEAD = json.dumps({"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX},
                   separators=(",", ":"))[:-1].encode() + b',"manifests":['
_TAIL = b"]}"


@dataclass(frozen=True, slots=True)
class ReferrersPage:
    body: bytes  # an encoded OCI image index
    next_after: str | None  # the digest the next page starts after, if one follows


async def referrers_page(index: Index, name: str, subject: Digest,
                   artifact_type: str | None = None, after: str | None = None,
                   budget: int = PAGE_BYTES) -> ReferrersPage:
    """The referrers after the digest `after`, filtered by artifact type if given, as many
    as fit in `budget` bytes (at least one)."""
    parts: list[bytes] = []
    size = len(_HEAD) + len(_TAIL)
    last = None
    rows = index.referrers(name, str(subject), artifact_type, after)
    async with aclosing(rows):
        async for row in rows:
            part = _descriptor(row)
            if parts and size + 1 + len(part) > budget:
                return ReferrersPage(_index(parts), last)
            size += len(part) + (1 if parts else 0)
            parts.append(part)
            last = row.digest
    return ReferrersPage(_index(parts), None)


def _descriptor(row: ReferrerRow) -> bytes:
    fields: dict[str, object] = {"mediaType": row.media_type, "digest": row.digest,
                                 "size": row.size}
    if row.artifact_type:
        fields["artifactType"] = row.artifact_type
    encoded = json.dumps(fields, separators=(",", ":")).encode()
    if not row.annotations_json:
        return encoded
    # The index keeps annotations as the JSON object they are served as: spliced in as they
    # are, they are neither decoded nor held twice.
    return encoded[:-1] + b',"annotations":' + row.annotations_json.encode() + b"}"


def _index(parts: list[bytes]) -> bytes:
    return _HEAD + b",".join(parts) + _TAIL
