"""Property-based fuzzing of the manifest parser and the name/reference grammar: any input
gives a result or the spec's error, never another exception."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dockyard.registry.errors import DigestInvalid, ManifestInvalid, NameInvalid
from dockyard.registry.manifest import parse_manifest, parse_stored, stored_media_type
from dockyard.registry.reference import NAME_RE, Digest, is_tag, validate_name

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
descriptor = st.fixed_dictionaries({
    "mediaType": st.text(max_size=40) | st.integers(),
    "digest": st.text(max_size=80) | st.just("sha256:" + "a" * 64),
    "size": st.integers(min_value=-5, max_value=10**12) | st.text(max_size=5),
}, optional={"annotations": json_values, "urls": json_values, "artifactType": json_values})
manifest_like = st.fixed_dictionaries({
    "schemaVersion": st.sampled_from([2, 1, "2", None]),
}, optional={
    "mediaType": st.sampled_from(["application/vnd.oci.image.manifest.v1+json",
                                  "application/vnd.oci.image.index.v1+json",
                                  "application/vnd.docker.distribution.manifest.v2+json"])
    | st.text(max_size=30),
    "config": descriptor | json_values,
    "layers": st.lists(descriptor, max_size=4) | json_values,
    "manifests": st.lists(descriptor, max_size=4) | json_values,
    "subject": descriptor | json_values,
    "annotations": json_values,
})
content_types = st.sampled_from([None, "", "application/json",
                                 "application/vnd.oci.image.manifest.v1+json",
                                 "application/vnd.oci.image.index.v1+json",
                                 "application/vnd.docker.distribution.manifest.v2+json",
                                 "application/vnd.docker.distribution.manifest.list.v2+json",
                                 "text/html; charset=utf-8"])


@settings(max_examples=400, deadline=None)
@given(document=manifest_like, content_type=content_types)
def test_manifest_parser_only_raises_manifest_invalid(document: dict[str, Any],
                                                      content_type: str | None) -> None:
    data = json.dumps(document).encode()
    try:
        manifest = parse_manifest(data, content_type)
    except ManifestInvalid as error:
        assert error.code == "MANIFEST_INVALID"
        return
    # Whatever was accepted is well-formed enough to store, list and collect.
    assert manifest.media_type
    for item in (*manifest.blobs, *manifest.children):
        assert isinstance(item.digest, Digest) and item.size >= 0
    stored = parse_stored(data, manifest.media_type)
    assert stored is not None


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(ManifestInvalid):
        parse_manifest(data, "application/vnd.oci.image.manifest.v1+json")
    assert isinstance(stored_media_type(data), str)


@settings(max_examples=500, deadline=None)
@given(name=st.text(max_size=300) | st.from_regex(NAME_RE, fullmatch=True))
def test_name_grammar(name: str) -> None:
    try:
        validated = validate_name(name)
    except NameInvalid as error:
        assert error.code == "NAME_INVALID"
        return
    # An accepted name is safe as a path below the store: no dot-only parts, no escapes.
    assert len(validated) <= 255
    parts = validated.split("/")
    assert all(part and part not in (".", "..") and not part.startswith("_") for part in parts)
    assert "\\" not in validated and "\0" not in validated


@settings(max_examples=500, deadline=None)
@given(reference=st.text(max_size=200))
def test_reference_grammar(reference: str) -> None:
    if is_tag(reference):
        assert 0 < len(reference) <= 128 and "/" not in reference and ":" not in reference
        return
    try:
        digest = Digest.parse(reference)
    except DigestInvalid as error:
        assert error.code == "DIGEST_INVALID"
        return
    assert str(digest) == reference and digest.algorithm in ("sha256", "sha512")
