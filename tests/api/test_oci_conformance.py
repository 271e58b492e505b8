"""The OCI distribution-spec conformance suite (v1.1.1, `conformance/` in
opencontainers/distribution-spec), spec by spec, against a real dockyard.

The suite runs four workflows one after the other in one namespace: pull
(01_pull_test.go), push (02_push_test.go), content discovery (03_discovery_test.go) and
content management (04_management_test.go), each with its setup and teardown. Its specs
build on each other (a chunk is retried on the upload an earlier spec opened, tags are
counted before a delete, a blob one workflow deleted is pushed again by the next), so the
specs here are steps run in the suite's order against one server: a test runs every
earlier step it has not run yet, then reports the outcome of its own step. Any test, run
alone, in any order or on any xdist worker, so checks its spec in the state the suite
would have left.

Settings: all four workflows on, a second namespace for cross-repository mounts,
automatic cross-mounting tested as enabled (dockyard mounts a blob without `from` when the
repository has it), no pre-populated content (OCI_TAG_NAME, OCI_TAG_LIST unset, so the
suite's "Get tag name from environment" and "Populate registry with test tags (no push)"
specs, which send and check nothing, do not apply), and both teardown orders: the whole
sequence runs with OCI_DELETE_MANIFEST_BEFORE_BLOBS=1 (the suite's default), again with =0,
and a third time with credentials (OCI_USERNAME, OCI_PASSWORD) against a registry behind
auth.htpasswd, each on a server of its own.

Where the suite accepts several answers, each test asserts the suite's set and then the
one dockyard gives (marked "dockyard:"), so a change between two allowed answers is seen.
"""

from __future__ import annotations

import base64
import functools
import gzip
import io
import json
import os
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from dockyard.auth.htpasswd import hash_password
from tests.support.oci import OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, digest_of
from tests.support.server import Storage, run_registry

NAME = "conformance/repo"
CROSSMOUNT_NAME = f"conformance-{uuid.uuid4()}"
TEST_TAG = "tagtest0"
EMPTY_LAYER_TAG = "emptylayer"
NONEXISTENT_MANIFEST = ".INVALID_MANIFEST_NAME"
DUMMY_DIGEST = digest_of(b"hello world")
EMPTY_JSON = b"{}"
EMPTY_JSON_TYPE = "application/vnd.oci.empty.v1+json"
# The digest every registry knows the empty JSON descriptor by (OCI image-spec).
EMPTY_JSON_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
ARTIFACT_TYPE_A = "application/vnd.dockyard.test.artifact-a"
ARTIFACT_TYPE_B = "application/vnd.dockyard.test.artifact-b"
ARTIFACT_TYPE_INDEX = "application/vnd.dockyard.test.artifact-index"
ANNOTATION = "org.example.conformance.test"
SPEC_ERROR_CODES = {
    "BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN", "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "MANIFEST_UNVERIFIED",
    "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "TAG_INVALID", "UNAUTHORIZED", "DENIED",
    "UNSUPPORTED",
}


# --- Test content, shaped as the suite's: Go's encoding/json writes []byte fields as base64
# and a nil one as null, so every descriptor carries an unknown field (a registry must keep
# and serve it) and config descriptors also carry their blob inline as `data`.

def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _descriptor(media_type: str, data: bytes, *, annotations: dict[str, str] | None = None,
                inline: bool = False, unspecified: bytes | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"mediaType": media_type, "digest": digest_of(data),
                                "size": len(data)}
    if annotations:
        document["annotations"] = annotations
    if inline:
        document["data"] = _b64(data)
    document["newUnspecifiedField"] = None if unspecified is None else _b64(unspecified)
    return document


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent="\t").encode()


def _config() -> bytes:
    return _encode({"author": os.urandom(8).hex(), "architecture": "amd64", "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": []}})


def _layer() -> bytes:
    """A real gzipped tarball of one small text file."""
    content = b"a layer for the conformance tests\n"
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as archive:
        member = tarfile.TarInfo("conformance.txt")
        member.size = len(content)
        archive.addfile(member, io.BytesIO(content))
    return gzip.compress(tar_bytes.getvalue(), mtime=0)


def _image_manifest(config: bytes, layers: list[bytes], *, media_type: bool = True) -> bytes:
    document: dict[str, Any] = {"schemaVersion": 2}
    if media_type:
        document["mediaType"] = OCI_MANIFEST
    document["config"] = _descriptor(OCI_CONFIG, config, inline=True,
                                     unspecified=b"any content at all")
    document["layers"] = [_descriptor(OCI_LAYER, layer) for layer in layers]
    return _encode(document)


def _artifact(subject: bytes, *, config: dict[str, Any], layers: list[dict[str, Any]],
              artifact_type: str | None = None, annotation: str | None = None) -> bytes:
    document: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_MANIFEST}
    if artifact_type:
        document["artifactType"] = artifact_type
    document["config"] = config
    document["layers"] = layers
    document["subject"] = _descriptor(OCI_MANIFEST, subject)
    if annotation:
        document["annotations"] = {ANNOTATION: annotation}
    return _encode(document)


LAYER = _layer()
CONFIGS = [_config() for _ in range(5)]  # one per workflow, as the suite's configs[0..4]
MANIFESTS = [_image_manifest(config, [LAYER]) for config in CONFIGS]
EMPTY_LAYER_MANIFEST = _image_manifest(CONFIGS[1], [], media_type=False)
BLOB_A = os.urandom(42)
BLOB_B = os.urandom(42)  # pushed in two chunks
REF_BLOB_A = b"payload of the first test artifact"
REF_BLOB_B = b"payload of the second test artifact"
EMPTY_JSON_DESCRIPTOR = _descriptor(EMPTY_JSON_TYPE, EMPTY_JSON)

# Referrers of MANIFESTS[4]: an artifact type given by the config's media type, or by
# artifactType with an empty config; A pushed before the subject, B after it.
REFS_A_CONFIG = _artifact(MANIFESTS[4], config=_descriptor(ARTIFACT_TYPE_A, REF_BLOB_A),
                          layers=[EMPTY_JSON_DESCRIPTOR], annotation="config artifact a")
REFS_B_CONFIG = _artifact(MANIFESTS[4], config=_descriptor(ARTIFACT_TYPE_B, REF_BLOB_B),
                          layers=[EMPTY_JSON_DESCRIPTOR], annotation="config artifact b")
REFS_A_LAYER = _artifact(MANIFESTS[4], config=EMPTY_JSON_DESCRIPTOR,
                         layers=[_descriptor(ARTIFACT_TYPE_A, REF_BLOB_A)],
                         artifact_type=ARTIFACT_TYPE_A, annotation="layer artifact a")
REFS_B_LAYER = _artifact(MANIFESTS[4], config=EMPTY_JSON_DESCRIPTOR,
                         layers=[_descriptor(ARTIFACT_TYPE_B, REF_BLOB_B)],
                         artifact_type=ARTIFACT_TYPE_B, annotation="layer artifact b")
# A referrer of MANIFESTS[3], which the discovery workflow never pushes.
REFS_C_LAYER = _artifact(MANIFESTS[3], config=EMPTY_JSON_DESCRIPTOR,
                         layers=[_descriptor(ARTIFACT_TYPE_B, REF_BLOB_B)],
                         artifact_type=ARTIFACT_TYPE_B)
REFS_INDEX = _encode({
    "schemaVersion": 2,
    "mediaType": OCI_INDEX,
    "artifactType": ARTIFACT_TYPE_INDEX,
    "manifests": [_descriptor(OCI_MANIFEST, REFS_A_CONFIG),
                  _descriptor(OCI_MANIFEST, REFS_A_LAYER)],
    "subject": _descriptor(OCI_MANIFEST, MANIFESTS[4]),
    "annotations": {ANNOTATION: "index artifact"},
})
ANNOTATION_OF = {digest_of(document): json.loads(document)["annotations"][ANNOTATION]
                 for document in (REFS_A_CONFIG, REFS_B_CONFIG, REFS_A_LAYER, REFS_B_LAYER,
                                  REFS_INDEX)}


@dataclass
class ChunkedBlob:
    """BLOB_B cut as the suite cuts it: the first chunk one byte longer than half."""

    data: bytes

    @property
    def first(self) -> bytes:
        return self.data[:len(self.data) // 2 + 1]

    @property
    def second(self) -> bytes:
        return self.data[len(self.data) // 2 + 1:]

    @property
    def first_range(self) -> str:
        return f"0-{len(self.first) - 1}"

    @property
    def second_range(self) -> str:
        return f"{len(self.first)}-{len(self.data) - 1}"


# --- Running the specs in the suite's order.

StepBody = Callable[["SuiteRun"], None]


@dataclass(frozen=True)
class Step:
    name: str
    body: StepBody
    # With OCI_DELETE_MANIFEST_BEFORE_BLOBS=0 the suite registers this teardown spec after
    # the step of that name instead of here.
    blobs_first_after: str | None


STEPS: list[Step] = []


def ordered_steps(manifests_first: bool) -> list[Step]:
    if manifests_first:
        return list(STEPS)
    ordered = [step for step in STEPS if step.blobs_first_after is None]
    for step in STEPS:
        if step.blobs_first_after is not None:
            anchor = next(i for i, s in enumerate(ordered) if s.name == step.blobs_first_after)
            ordered.insert(anchor + 1, step)
    return ordered


def spec(blobs_first_after: str | None = None) -> Callable[[StepBody], StepBody]:
    """Register a suite spec as a step; the test runs the suite up to it."""
    def register(body: StepBody) -> StepBody:
        step = Step(body.__name__, body, blobs_first_after)
        STEPS.append(step)

        @functools.wraps(body)
        def test(suite: SuiteRun) -> None:
            suite.check(step.name)
        return test
    return register


@dataclass(repr=False)
class SuiteRun:
    """One pass of the suite over one server, with the state its specs hand on."""

    http: httpx.Client
    manifests_first: bool
    outcomes: dict[str, BaseException | None] = field(default_factory=dict)
    chunked: ChunkedBlob = field(default_factory=lambda: ChunkedBlob(BLOB_B))
    tag: str = ""
    last: httpx.Response | None = None
    previous: httpx.Response | None = None
    empty_layer_ref: str = ""
    num_tags: int = 4
    tag_list: list[str] = field(default_factory=list)
    tag_to_delete: str = ""
    management_tags: int = 0
    blob_delete_allowed: bool = True

    def check(self, name: str) -> None:
        earlier_failures: list[str] = []
        for step in ordered_steps(self.manifests_first):
            if step.name not in self.outcomes:
                try:
                    step.body(self)
                    self.outcomes[step.name] = None
                except Exception as failure:  # reported by the test of that step
                    self.outcomes[step.name] = failure
            if step.name == name:
                break
            if self.outcomes[step.name] is not None:
                earlier_failures.append(step.name)
        outcome = self.outcomes[name]
        if outcome is not None:
            if earlier_failures:
                outcome.add_note("specs before this one failed too (it may follow from them): "
                                 + ", ".join(earlier_failures))
            raise outcome

    def __repr__(self) -> str:  # short, for assertion messages
        return f"<suite run on {self.http.base_url}>"

    def last_response(self) -> httpx.Response:
        assert self.last is not None, "an earlier spec left no response"
        return self.last


@dataclass(frozen=True)
class Settings:
    manifests_first: bool  # OCI_DELETE_MANIFEST_BEFORE_BLOBS
    basic_auth: bool  # OCI_USERNAME and OCI_PASSWORD, against auth.htpasswd


@pytest.fixture(scope="module", params=[
    pytest.param(Settings(manifests_first=True, basic_auth=False), id="manifests-before-blobs"),
    pytest.param(Settings(manifests_first=False, basic_auth=False), id="blobs-before-manifests"),
    pytest.param(Settings(manifests_first=True, basic_auth=True), id="htpasswd"),
])
def suite(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          storage: Storage) -> Iterator[SuiteRun]:
    settings: Settings = request.param
    tmp = tmp_path_factory.mktemp("conformance")
    config: dict[str, Any] = {"storage": {"delete": {"enabled": True}}}
    credentials: tuple[str, str] | None = None
    if settings.basic_auth:
        credentials = ("conformance", "a password for the suite")
        users = tmp / "htpasswd"
        users.write_text(f"{credentials[0]}:{hash_password(credentials[1], rounds=4)}\n")
        config["auth"] = {"htpasswd": {"realm": "conformance", "path": str(users)}}
    with run_registry(tmp, config=config, storage=storage) as registry, \
            registry.client(auth=credentials) as http:
        if credentials is not None:
            assert httpx.get(f"{registry.url}/v2/").status_code == 401
        yield SuiteRun(http, manifests_first=settings.manifests_first)


# --- Helpers speaking as the suite's client does.

def relative(location: str) -> str:
    """Path and query of a Location header (the suite sends every follow-up there)."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def is_success(response: httpx.Response) -> bool:
    return 200 <= response.status_code < 300


def upload(suite: SuiteRun, data: bytes, name: str = NAME) -> httpx.Response:
    """POST, then PUT the whole blob to the Location with its digest."""
    started = suite.http.post(f"/v2/{name}/blobs/uploads/")
    return suite.http.put(relative(started.headers.get("Location", "")),
                          params={"digest": digest_of(data)}, content=data,
                          headers={"Content-Type": "application/octet-stream"})


def put_manifest(suite: SuiteRun, reference: str, document: bytes,
                 media_type: str = OCI_MANIFEST) -> httpx.Response:
    return suite.http.put(f"/v2/{NAME}/manifests/{reference}", content=document,
                          headers={"Content-Type": media_type})


def get_manifest(suite: SuiteRun, method: str, reference: str,
                 accept: str | None = OCI_MANIFEST) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    return suite.http.request(method, f"/v2/{NAME}/manifests/{reference}", headers=headers)


def delete_manifest(suite: SuiteRun, reference: str) -> httpx.Response:
    return suite.http.delete(f"/v2/{NAME}/manifests/{reference}")


def delete_blob(suite: SuiteRun, data: bytes) -> httpx.Response:
    return suite.http.delete(f"/v2/{NAME}/blobs/{digest_of(data)}")


def assert_deleted_or_refused(response: httpx.Response, *, may_be_gone: bool,
                              dockyard: int) -> None:
    """A teardown delete: 2xx or 405 (and 404 where the suite allows it)."""
    allowed = is_success(response) or response.status_code == 405 \
        or (may_be_gone and response.status_code == 404)
    assert allowed, (response.status_code, response.text)
    assert response.status_code == dockyard, (response.status_code, response.text)


def tag_list(response: httpx.Response) -> list[str]:
    tags = response.json().get("tags") or []
    assert isinstance(tags, list)
    return [str(tag) for tag in tags]


def referrers(suite: SuiteRun, subject: bytes | str, **params: str) -> httpx.Response:
    digest = subject if isinstance(subject, str) else digest_of(subject)
    response = suite.http.get(f"/v2/{NAME}/referrers/{digest}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == OCI_INDEX
    return response


def assert_annotations(manifests: list[dict[str, Any]]) -> None:
    for entry in manifests:
        assert entry.get("annotations") == {ANNOTATION: ANNOTATION_OF[entry["digest"]]}, entry


# ===== 01_pull_test.go =====================================================================

# 01_pull_test.go, Pull / Setup: "Populate registry with test blob" (configs[0])
@spec()
def test_pull_setup_populate_registry_with_test_blob_config0(suite: SuiteRun) -> None:
    assert is_success(upload(suite, CONFIGS[0]))


# 01_pull_test.go, Pull / Setup: "Populate registry with test blob" (configs[1])
@spec()
def test_pull_setup_populate_registry_with_test_blob_config1(suite: SuiteRun) -> None:
    assert is_success(upload(suite, CONFIGS[1]))


# 01_pull_test.go, Pull / Setup: "Populate registry with test layer"
@spec()
def test_pull_setup_populate_registry_with_test_layer(suite: SuiteRun) -> None:
    assert is_success(upload(suite, LAYER))


# 01_pull_test.go, Pull / Setup: "Populate registry with test manifest" (manifests[0], by tag)
@spec()
def test_pull_setup_populate_registry_with_test_manifest_by_tag(suite: SuiteRun) -> None:
    suite.tag = TEST_TAG
    assert is_success(put_manifest(suite, suite.tag, MANIFESTS[0]))


# 01_pull_test.go, Pull / Setup: "Populate registry with test manifest" (manifests[1], by
# digest)
@spec()
def test_pull_setup_populate_registry_with_test_manifest_by_digest(suite: SuiteRun) -> None:
    assert is_success(put_manifest(suite, digest_of(MANIFESTS[1]), MANIFESTS[1]))


# 01_pull_test.go, Pull / Pull blobs: "HEAD request to nonexistent blob should result in 404
# response"
@spec()
def test_pull_head_request_to_nonexistent_blob_should_result_in_404(suite: SuiteRun) -> None:
    assert suite.http.head(f"/v2/{NAME}/blobs/{DUMMY_DIGEST}").status_code == 404


# 01_pull_test.go, Pull / Pull blobs: "HEAD request to existing blob should yield 200"
@spec()
def test_pull_head_request_to_existing_blob_should_yield_200(suite: SuiteRun) -> None:
    response = suite.http.head(f"/v2/{NAME}/blobs/{digest_of(CONFIGS[0])}")
    assert response.status_code == 200
    # The suite checks Docker-Content-Digest when present; dockyard always sends it.
    assert response.headers["Docker-Content-Digest"] == digest_of(CONFIGS[0])


# 01_pull_test.go, Pull / Pull blobs: "GET nonexistent blob should result in 404 response"
@spec()
def test_pull_get_nonexistent_blob_should_result_in_404(suite: SuiteRun) -> None:
    assert suite.http.get(f"/v2/{NAME}/blobs/{DUMMY_DIGEST}").status_code == 404


# 01_pull_test.go, Pull / Pull blobs: "GET request to existing blob URL should yield 200"
@spec()
def test_pull_get_request_to_existing_blob_url_should_yield_200(suite: SuiteRun) -> None:
    response = suite.http.get(f"/v2/{NAME}/blobs/{digest_of(CONFIGS[0])}")
    assert response.status_code == 200
    assert response.content == CONFIGS[0]


# 01_pull_test.go, Pull / Pull manifests: "HEAD request to nonexistent manifest should return
# 404"
@spec()
def test_pull_head_request_to_nonexistent_manifest_should_return_404(suite: SuiteRun) -> None:
    assert get_manifest(suite, "HEAD", NONEXISTENT_MANIFEST, accept=None).status_code == 404


# 01_pull_test.go, Pull / Pull manifests: "HEAD request to manifest[0] path (digest) should
# yield 200 response"
@spec()
def test_pull_head_request_to_manifest0_path_digest_should_yield_200(suite: SuiteRun) -> None:
    response = get_manifest(suite, "HEAD", digest_of(MANIFESTS[0]))
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest_of(MANIFESTS[0])


# 01_pull_test.go, Pull / Pull manifests: "HEAD request to manifest[1] path (digest) should
# yield 200 response"
@spec()
def test_pull_head_request_to_manifest1_path_digest_should_yield_200(suite: SuiteRun) -> None:
    response = get_manifest(suite, "HEAD", digest_of(MANIFESTS[1]))
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest_of(MANIFESTS[1])


# 01_pull_test.go, Pull / Pull manifests: "HEAD request to manifest path (tag) should yield
# 200 response"
@spec()
def test_pull_head_request_to_manifest_path_tag_should_yield_200(suite: SuiteRun) -> None:
    assert suite.tag
    response = get_manifest(suite, "HEAD", suite.tag)
    assert response.status_code == 200
    assert response.headers["Docker-Content-Digest"] == digest_of(MANIFESTS[0])


# 01_pull_test.go, Pull / Pull manifests: "GET nonexistent manifest should return 404"
@spec()
def test_pull_get_nonexistent_manifest_should_return_404(suite: SuiteRun) -> None:
    assert get_manifest(suite, "GET", NONEXISTENT_MANIFEST, accept=None).status_code == 404


# 01_pull_test.go, Pull / Pull manifests: "GET request to manifest[0] path (digest) should
# yield 200 response"
@spec()
def test_pull_get_request_to_manifest0_path_digest_should_yield_200(suite: SuiteRun) -> None:
    response = get_manifest(suite, "GET", digest_of(MANIFESTS[0]))
    assert response.status_code == 200
    assert response.content == MANIFESTS[0]


# 01_pull_test.go, Pull / Pull manifests: "GET request to manifest[1] path (digest) should
# yield 200 response"
@spec()
def test_pull_get_request_to_manifest1_path_digest_should_yield_200(suite: SuiteRun) -> None:
    response = get_manifest(suite, "GET", digest_of(MANIFESTS[1]))
    assert response.status_code == 200
    assert response.content == MANIFESTS[1]


# 01_pull_test.go, Pull / Pull manifests: "GET request to manifest path (tag) should yield
# 200 response"
@spec()
def test_pull_get_request_to_manifest_path_tag_should_yield_200(suite: SuiteRun) -> None:
    assert suite.tag
    response = get_manifest(suite, "GET", suite.tag)
    assert response.status_code == 200
    assert response.content == MANIFESTS[0]


# 01_pull_test.go, Pull / Error codes: "400 response body should contain OCI-conforming JSON
# message" (a GET, with a body, of a digest reference that is not a digest)
@spec()
def test_pull_400_response_body_should_contain_oci_conforming_json(suite: SuiteRun) -> None:
    response = suite.http.request("GET", f"/v2/{NAME}/manifests/sha256:totallywrong",
                                  content=b"blablabla", headers={"Content-Type": OCI_MANIFEST})
    assert response.status_code in (400, 404), response.text
    # dockyard: 400 with the spec's error body (the suite checks its first code then).
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors and errors[0]["code"] in SPEC_ERROR_CODES, errors


# 01_pull_test.go, Pull / Teardown: "Delete manifest[0] created in setup"
@spec(blobs_first_after="test_pull_teardown_delete_layer_blob_created_in_setup")
def test_pull_teardown_delete_manifest0_created_in_setup(suite: SuiteRun) -> None:
    assert_deleted_or_refused(delete_manifest(suite, digest_of(MANIFESTS[0])),
                              may_be_gone=False, dockyard=202)


# 01_pull_test.go, Pull / Teardown: "Delete manifest[1] created in setup"
@spec(blobs_first_after="test_pull_teardown_delete_manifest0_created_in_setup")
def test_pull_teardown_delete_manifest1_created_in_setup(suite: SuiteRun) -> None:
    assert_deleted_or_refused(delete_manifest(suite, digest_of(MANIFESTS[1])),
                              may_be_gone=False, dockyard=202)


# 01_pull_test.go, Pull / Teardown: "Delete config[0] blob created in setup"
@spec()
def test_pull_teardown_delete_config0_blob_created_in_setup(suite: SuiteRun) -> None:
    assert_deleted_or_refused(delete_blob(suite, CONFIGS[0]), may_be_gone=True, dockyard=202)


# 01_pull_test.go, Pull / Teardown: "Delete config[1] blob created in setup"
@spec()
def test_pull_teardown_delete_config1_blob_created_in_setup(suite: SuiteRun) -> None:
    assert_deleted_or_refused(delete_blob(suite, CONFIGS[1]), may_be_gone=True, dockyard=202)


# 01_pull_test.go, Pull / Teardown: "Delete layer blob created in setup"
@spec()
def test_pull_teardown_delete_layer_blob_created_in_setup(suite: SuiteRun) -> None:
    assert_deleted_or_refused(delete_blob(suite, LAYER), may_be_gone=True, dockyard=202)


# ===== 02_push_test.go =====================================================================

# 02_push_test.go, Push / Blob Upload Streamed: "PATCH request with blob in body should yield
# 202 response"
@spec()
def test_push_streamed_patch_request_with_blob_in_body_should_yield_202(suite: SuiteRun) -> None:
    started = suite.http.post(f"/v2/{NAME}/blobs/uploads/")
    assert started.headers.get("Location")
    response = suite.http.patch(relative(started.headers["Location"]), content=BLOB_A,
                                headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 202, response.text
    suite.last = response


# 02_push_test.go, Push / Blob Upload Streamed: "PUT request to session URL with digest should
# yield 201 response" (no body: the data came in the PATCH)
@spec()
def test_push_streamed_put_request_to_session_url_with_digest_should_yield_201(
        suite: SuiteRun) -> None:
    location = relative(suite.last_response().headers.get("Location", ""))
    response = suite.http.put(location, params={"digest": digest_of(BLOB_A)},
                              headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    assert response.headers.get("Location")


# 02_push_test.go, Push / Blob Upload Monolithic: "GET nonexistent blob should result in 404
# response"
@spec()
def test_push_monolithic_get_nonexistent_blob_should_result_in_404(suite: SuiteRun) -> None:
    assert suite.http.get(f"/v2/{NAME}/blobs/{DUMMY_DIGEST}").status_code == 404


# 02_push_test.go, Push / Blob Upload Monolithic: "POST request with digest and blob should
# yield a 201 or 202"
@spec()
def test_push_monolithic_post_request_with_digest_and_blob_should_yield_201_or_202(
        suite: SuiteRun) -> None:
    response = suite.http.post(f"/v2/{NAME}/blobs/uploads/",
                               params={"digest": digest_of(CONFIGS[1])}, content=CONFIGS[1],
                               headers={"Content-Type": "application/octet-stream"})
    assert response.headers.get("Location")
    assert response.status_code in (201, 202), response.text
    assert response.status_code == 201  # dockyard: pushes in one request
    suite.last = response


# 02_push_test.go, Push / Blob Upload Monolithic: "GET request to blob URL from prior request
# should yield 200 or 404 based on response code"
@spec()
def test_push_monolithic_get_request_to_blob_url_from_prior_request_should_yield_200_or_404(
        suite: SuiteRun) -> None:
    response = suite.http.get(f"/v2/{NAME}/blobs/{digest_of(CONFIGS[1])}")
    expected = 404 if suite.last_response().status_code == 202 else 200
    assert response.status_code == expected


# 02_push_test.go, Push / Blob Upload Monolithic: "POST request should yield a session ID"
@spec()
def test_push_monolithic_post_request_should_yield_a_session_id(suite: SuiteRun) -> None:
    response = suite.http.post(f"/v2/{NAME}/blobs/uploads/")
    assert response.status_code == 202
    suite.last = response


# 02_push_test.go, Push / Blob Upload Monolithic: "PUT upload of a blob should yield a 201
# Response"
@spec()
def test_push_monolithic_put_upload_of_a_blob_should_yield_201(suite: SuiteRun) -> None:
    response = suite.http.put(relative(suite.last_response().headers.get("Location", "")),
                              params={"digest": digest_of(CONFIGS[1])}, content=CONFIGS[1],
                              headers={"Content-Type": "application/octet-stream"})
    assert response.headers.get("Location")
    assert response.status_code == 201, response.text


# 02_push_test.go, Push / Blob Upload Monolithic: "GET request to existing blob should yield
# 200 response"
@spec()
def test_push_monolithic_get_request_to_existing_blob_should_yield_200(suite: SuiteRun) -> None:
    assert suite.http.get(f"/v2/{NAME}/blobs/{digest_of(CONFIGS[1])}").status_code == 200


# 02_push_test.go, Push / Blob Upload Monolithic: "PUT upload of a layer blob should yield a
# 201 Response"
@spec()
def test_push_monolithic_put_upload_of_a_layer_blob_should_yield_201(suite: SuiteRun) -> None:
    response = upload(suite, LAYER)
    assert response.headers.get("Location")
    assert response.status_code == 201, response.text


# 02_push_test.go, Push / Blob Upload Monolithic: "GET request to existing layer should yield
# 200 response"
@spec()
def test_push_monolithic_get_request_to_existing_layer_should_yield_200(suite: SuiteRun) -> None:
    response = suite.http.get(f"/v2/{NAME}/blobs/{digest_of(LAYER)}")
    assert response.status_code == 200
    assert response.content == LAYER


def _start_chunked_upload(suite: SuiteRun) -> httpx.Response:
    started = suite.http.post(f"/v2/{NAME}/blobs/uploads/", headers={"Content-Length": "0"})
    assert started.headers.get("Location")
    # A registry may ask for bigger chunks; the suite then makes its blob big enough.
    minimum = started.headers.get("OCI-Chunk-Min-Length")
    if minimum and int(minimum) > len(suite.chunked.first):
        suite.chunked = ChunkedBlob(os.urandom(int(minimum) * 2 - 2))
    return started


def _patch_chunk(suite: SuiteRun, location: str, chunk: bytes, content_range: str
                 ) -> httpx.Response:
    return suite.http.patch(relative(location), content=chunk, headers={
        "Content-Type": "application/octet-stream", "Content-Range": content_range})


# 02_push_test.go, Push / Blob Upload Chunked: "Out-of-order blob upload should return 416"
@spec()
def test_push_chunked_out_of_order_blob_upload_should_return_416(suite: SuiteRun) -> None:
    started = _start_chunked_upload(suite)
    response = _patch_chunk(suite, started.headers["Location"], suite.chunked.second,
                            suite.chunked.second_range)
    assert response.status_code == 416, response.text


# 02_push_test.go, Push / Blob Upload Chunked: "PATCH request with first chunk should return
# 202"
@spec()
def test_push_chunked_patch_request_with_first_chunk_should_return_202(suite: SuiteRun) -> None:
    started = _start_chunked_upload(suite)
    suite.previous = started
    response = _patch_chunk(suite, started.headers["Location"], suite.chunked.first,
                            suite.chunked.first_range)
    assert response.status_code == 202, response.text
    assert response.headers.get("Range") == suite.chunked.first_range
    suite.last = response


# 02_push_test.go, Push / Blob Upload Chunked: "Retry previous blob chunk should return 416"
@spec()
def test_push_chunked_retry_previous_blob_chunk_should_return_416(suite: SuiteRun) -> None:
    assert suite.previous is not None
    response = _patch_chunk(suite, suite.previous.headers["Location"], suite.chunked.first,
                            suite.chunked.first_range)
    assert response.status_code == 416, response.text


# 02_push_test.go, Push / Blob Upload Chunked: "Get on stale blob upload should return 204 with
# a range and location"
@spec()
def test_push_chunked_get_on_stale_blob_upload_should_return_204_with_range_and_location(
        suite: SuiteRun) -> None:
    assert suite.previous is not None
    response = suite.http.get(relative(suite.previous.headers["Location"]))
    assert response.status_code == 204, response.text
    assert response.headers.get("Location")
    assert response.headers.get("Range") == suite.chunked.first_range
    suite.last = response


# 02_push_test.go, Push / Blob Upload Chunked: "PATCH request with second chunk should return
# 202"
@spec()
def test_push_chunked_patch_request_with_second_chunk_should_return_202(suite: SuiteRun) -> None:
    response = _patch_chunk(suite, suite.last_response().headers.get("Location", ""),
                            suite.chunked.second, suite.chunked.second_range)
    assert response.status_code == 202, response.text
    assert response.headers.get("Location")
    suite.last = response


# 02_push_test.go, Push / Blob Upload Chunked: "PUT request with digest should return 201"
@spec()
def test_push_chunked_put_request_with_digest_should_return_201(suite: SuiteRun) -> None:
    response = suite.http.put(relative(suite.last_response().headers.get("Location", "")),
                              params={"digest": digest_of(suite.chunked.data)},
                              headers={"Content-Length": "0",
                                       "Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    assert response.headers.get("Location")
    stored = suite.http.get(f"/v2/{NAME}/blobs/{digest_of(suite.chunked.data)}")
    assert stored.content == suite.chunked.data


# 02_push_test.go, Push / Cross-Repository Blob Mount: "Cross-mounting of a blob without the
# from argument should yield session id"
@spec()
def test_push_cross_mount_without_from_argument_should_yield_session_id(
        suite: SuiteRun) -> None:
    response = suite.http.post(f"/v2/{CROSSMOUNT_NAME}/blobs/uploads/",
                               params={"mount": DUMMY_DIGEST})
    assert response.status_code == 202, response.text
    assert response.headers.get("Location")


# 02_push_test.go, Push / Cross-Repository Blob Mount: "POST request to mount another
# repository's blob should return 201 or 202"
@spec()
def test_push_cross_mount_post_request_to_mount_another_repositorys_blob_201_or_202(
        suite: SuiteRun) -> None:
    response = suite.http.post(f"/v2/{CROSSMOUNT_NAME}/blobs/uploads/",
                               params={"mount": digest_of(BLOB_A), "from": NAME})
    assert response.status_code in (201, 202), response.text
    assert response.status_code == 201  # dockyard: mounts
    suite.last = response


# 02_push_test.go, Push / Cross-Repository Blob Mount: "GET request to test digest within
# cross-mount namespace should return 200" (run by the suite when the mount gave 201)
@spec()
def test_push_cross_mount_get_request_to_test_digest_within_cross_mount_namespace_200(
        suite: SuiteRun) -> None:
    mounted = suite.last_response()
    assert mounted.status_code == 201
    location = relative(mounted.headers["Location"])
    assert location == f"/v2/{CROSSMOUNT_NAME}/blobs/{digest_of(BLOB_A)}"
    response = suite.http.get(location)
    assert response.status_code == 200
    assert response.content == BLOB_A


# 02_push_test.go, Push / Cross-Repository Blob Mount: "Cross-mounting of nonexistent blob
# should yield session id" (the suite checks the Location of a mount that gave 202; dockyard
# mounted the existing blob above, so this asks to mount one `from` does not have)
@spec()
def test_push_cross_mount_of_nonexistent_blob_should_yield_session_id(suite: SuiteRun) -> None:
    response = suite.http.post(f"/v2/{CROSSMOUNT_NAME}/blobs/uploads/",
                               params={"mount": DUMMY_DIGEST, "from": NAME})
    assert response.status_code == 202, response.text
    assert relative(response.headers["Location"]).startswith(
        f"/v2/{CROSSMOUNT_NAME}/blobs/uploads/")


# 02_push_test.go, Push / Cross-Repository Blob Mount: "Cross-mounting without from, and
# automatic content discovery enabled should return a 201" (OCI_AUTOMATIC_CROSSMOUNT=1)
@spec()
def test_push_cross_mount_without_from_automatic_content_discovery_enabled_201(
        suite: SuiteRun) -> None:
    assert suite.last_response().status_code == 201
    response = suite.http.post(f"/v2/{CROSSMOUNT_NAME}/blobs/uploads/",
                               params={"mount": digest_of(BLOB_A)})
    assert response.status_code == 201, response.text


# 02_push_test.go, Push / Cross-Repository Blob Mount: "Cross-mounting without from, and
# automatic content discovery disabled should return a 202" (OCI_AUTOMATIC_CROSSMOUNT=0).
# dockyard discovers only within the target repository: the suite's own case (a blob the
# repository already has) mounts, as the spec above checks, so the suite must be run with
# OCI_AUTOMATIC_CROSSMOUNT=1; a blob only another repository has is not looked for, and
# the request starts an upload (202), which is what this checks.
@spec()
def test_push_cross_mount_without_from_automatic_content_discovery_disabled_202(
        suite: SuiteRun) -> None:
    response = suite.http.post(f"/v2/{CROSSMOUNT_NAME}/blobs/uploads/",
                               params={"mount": digest_of(LAYER)})
    assert suite.http.head(f"/v2/{NAME}/blobs/{digest_of(LAYER)}").status_code == 200
    assert response.status_code == 202, response.text
    assert relative(response.headers["Location"]).startswith(
        f"/v2/{CROSSMOUNT_NAME}/blobs/uploads/")


# 02_push_test.go, Push / Manifest Upload: "GET nonexistent manifest should return 404"
@spec()
def test_push_manifest_upload_get_nonexistent_manifest_should_return_404(
        suite: SuiteRun) -> None:
    assert get_manifest(suite, "GET", NONEXISTENT_MANIFEST, accept=None).status_code == 404


# 02_push_test.go, Push / Manifest Upload: "PUT should accept a manifest upload" (four tags)
@spec()
def test_push_manifest_upload_put_should_accept_a_manifest_upload(suite: SuiteRun) -> None:
    for i in range(4):
        response = put_manifest(suite, f"test{i}", MANIFESTS[1])
        assert response.headers.get("Location")
        assert response.status_code == 201, response.text


# 02_push_test.go, Push / Manifest Upload: "Registry should accept a manifest upload with no
# layers" (the suite only warns when refused; dockyard accepts it)
@spec()
def test_push_manifest_upload_registry_should_accept_a_manifest_with_no_layers(
        suite: SuiteRun) -> None:
    response = put_manifest(suite, EMPTY_LAYER_TAG, EMPTY_LAYER_MANIFEST)
    assert response.status_code == 201, response.text
    assert response.headers.get("Location")
    suite.empty_layer_ref = response.headers["Location"]


# 02_push_test.go, Push / Manifest Upload: "GET request to manifest URL (digest) should yield
# 200 response"
@spec()
def test_push_manifest_upload_get_request_to_manifest_url_digest_should_yield_200(
        suite: SuiteRun) -> None:
    response = get_manifest(suite, "GET", digest_of(MANIFESTS[1]))
    assert response.status_code == 200
    assert response.content == MANIFESTS[1]


# 02_push_test.go, Push / Teardown: "Delete manifest created in tests" (and the one with no
# layers)
@spec(blobs_first_after="test_push_teardown_delete_layer_blob_created_in_setup")
def test_push_teardown_delete_manifest_created_in_tests(suite: SuiteRun) -> None:
    assert_deleted_or_refused(delete_manifest(suite, digest_of(MANIFESTS[1])),
                              may_be_gone=False, dockyard=202)
    assert suite.empty_layer_ref
    assert_deleted_or_refused(delete_manifest(suite, digest_of(EMPTY_LAYER_MANIFEST)),
                              may_be_gone=False, dockyard=202)


# 02_push_test.go, Push / Teardown: "Delete config blob created in tests"
@spec()
def test_push_teardown_delete_config_blob_created_in_tests(suite: SuiteRun) -> None:
    assert_deleted_or_refused(delete_blob(suite, CONFIGS[1]), may_be_gone=True, dockyard=202)


# 02_push_test.go, Push / Teardown: "Delete layer blob created in setup"
@spec()
def test_push_teardown_delete_layer_blob_created_in_setup(suite: SuiteRun) -> None:
    assert_deleted_or_refused(delete_blob(suite, LAYER), may_be_gone=True, dockyard=202)


# ===== 03_discovery_test.go ================================================================

# 03_discovery_test.go, Content Discovery / Setup: "Populate registry with test blob"
@spec()
def test_discovery_setup_populate_registry_with_test_blob(suite: SuiteRun) -> None:
    assert is_success(upload(suite, CONFIGS[2]))


# 03_discovery_test.go, Content Discovery / Setup: "Populate registry with test layer"
@spec()
def test_discovery_setup_populate_registry_with_test_layer(suite: SuiteRun) -> None:
    assert is_success(upload(suite, LAYER))


# 03_discovery_test.go, Content Discovery / Setup: "Populate registry with test tags"
@spec()
def test_discovery_setup_populate_registry_with_test_tags(suite: SuiteRun) -> None:
    for i in range(suite.num_tags):
        assert is_success(put_manifest(suite, f"test{i}", MANIFESTS[2]))
    suite.tag_list = tag_list(suite.http.get(f"/v2/{NAME}/tags/list"))


def _push_referrer(suite: SuiteRun, document: bytes, subject: bytes,
                   media_type: str = OCI_MANIFEST) -> None:
    response = put_manifest(suite, digest_of(document), document, media_type)
    assert is_success(response), response.text
    assert response.headers.get("OCI-Subject") == digest_of(subject)


# 03_discovery_test.go, Content Discovery / Setup: "References setup" (referrers pushed before
# and after their subject, and one whose subject is never pushed, each answering OCI-Subject)
@spec()
def test_discovery_setup_references_setup(suite: SuiteRun) -> None:
    assert digest_of(EMPTY_JSON) == EMPTY_JSON_DIGEST
    assert is_success(upload(suite, EMPTY_JSON))
    assert is_success(upload(suite, REF_BLOB_A))
    _push_referrer(suite, REFS_A_CONFIG, MANIFESTS[4])
    _push_referrer(suite, REFS_A_LAYER, MANIFESTS[4])
    _push_referrer(suite, REFS_INDEX, MANIFESTS[4], OCI_INDEX)
    assert is_success(upload(suite, CONFIGS[4]))
    assert is_success(upload(suite, LAYER))
    assert is_success(put_manifest(suite, TEST_TAG, MANIFESTS[4]))
    assert is_success(upload(suite, REF_BLOB_B))
    _push_referrer(suite, REFS_B_CONFIG, MANIFESTS[4])
    _push_referrer(suite, REFS_B_LAYER, MANIFESTS[4])
    _push_referrer(suite, REFS_C_LAYER, MANIFESTS[3])


# 03_discovery_test.go, Content Discovery / listing tags: "GET request to list tags should
# yield 200 response"
@spec()
def test_discovery_get_request_to_list_tags_should_yield_200(suite: SuiteRun) -> None:
    response = suite.http.get(f"/v2/{NAME}/tags/list")
    assert response.status_code == 200
    suite.tag_list = tag_list(response)
    suite.num_tags = len(suite.tag_list)
    # dockyard: the four test tags and the tag of the referrers' subject.
    assert suite.tag_list == ["tagtest0", "test0", "test1", "test2", "test3"]


# 03_discovery_test.go, Content Discovery / listing tags: "GET number of tags should be
# limitable by `n` query parameter"
@spec()
def test_discovery_get_number_of_tags_should_be_limitable_by_n(suite: SuiteRun) -> None:
    count = suite.num_tags // 2
    response = suite.http.get(f"/v2/{NAME}/tags/list", params={"n": str(count)})
    assert response.status_code == 200
    suite.tag_list = tag_list(response)
    assert len(suite.tag_list) == count


# 03_discovery_test.go, Content Discovery / listing tags: "GET start of tag is set by `last`
# query parameter". The suite checks the first page again after asking for the second; this
# also checks the second page.
@spec()
def test_discovery_get_start_of_tag_is_set_by_last(suite: SuiteRun) -> None:
    count = suite.num_tags // 2
    first = tag_list(suite.http.get(f"/v2/{NAME}/tags/list", params={"n": str(count)}))
    last = first[count - 1]
    response = suite.http.get(f"/v2/{NAME}/tags/list", params={"n": str(count), "last": last})
    assert response.status_code == 200
    assert len(first) <= count and last in first
    following = tag_list(response)
    assert 0 < len(following) <= count
    assert all(tag > last for tag in following), following


# 03_discovery_test.go, Content Discovery / listing references: "GET request to nonexistent
# blob should result in empty 200 response"
@spec()
def test_discovery_referrers_of_nonexistent_blob_empty_200(suite: SuiteRun) -> None:
    assert referrers(suite, DUMMY_DIGEST).json()["manifests"] == []


# 03_discovery_test.go, Content Discovery / listing references: "GET request to existing blob
# should yield 200"
@spec()
def test_discovery_referrers_of_existing_blob_should_yield_200(suite: SuiteRun) -> None:
    manifests = referrers(suite, MANIFESTS[4]).json()["manifests"]
    assert len(manifests) == 5
    assert manifests[0]["digest"] != manifests[1]["digest"]
    assert_annotations(manifests)


# 03_discovery_test.go, Content Discovery / listing references: "GET request to existing blob
# with filter should yield 200" (the suite also accepts an unfiltered answer without
# OCI-Filters-Applied; dockyard filters)
@spec()
def test_discovery_referrers_of_existing_blob_with_filter_should_yield_200(
        suite: SuiteRun) -> None:
    response = referrers(suite, MANIFESTS[4], artifactType=ARTIFACT_TYPE_A)
    manifests = response.json()["manifests"]
    assert response.headers.get("OCI-Filters-Applied") == "artifactType"
    assert len(manifests) == 2
    assert_annotations(manifests)
    assert {entry["digest"] for entry in manifests} == {digest_of(REFS_A_CONFIG),
                                                        digest_of(REFS_A_LAYER)}


# 03_discovery_test.go, Content Discovery / listing references: "GET request to missing
# manifest should yield 200"
@spec()
def test_discovery_referrers_of_missing_manifest_should_yield_200(suite: SuiteRun) -> None:
    manifests = referrers(suite, MANIFESTS[3]).json()["manifests"]
    assert len(manifests) == 1
    assert manifests[0]["digest"] == digest_of(REFS_C_LAYER)


DISCOVERY_MANIFESTS = [REFS_INDEX, MANIFESTS[2], MANIFESTS[4], REFS_A_CONFIG, REFS_A_LAYER,
                       REFS_B_CONFIG, REFS_B_LAYER, REFS_C_LAYER]


# 03_discovery_test.go, Content Discovery / Teardown: "Delete created manifest & associated
# tags"
@spec(blobs_first_after="test_discovery_teardown_delete_layer_blob_created_in_setup")
def test_discovery_teardown_delete_created_manifest_and_associated_tags(
        suite: SuiteRun) -> None:
    for document in DISCOVERY_MANIFESTS:
        assert_deleted_or_refused(delete_manifest(suite, digest_of(document)),
                                  may_be_gone=True, dockyard=202)
    assert tag_list(suite.http.get(f"/v2/{NAME}/tags/list")) == []


# 03_discovery_test.go, Content Discovery / Teardown: "Delete config blob created in tests"
@spec()
def test_discovery_teardown_delete_config_blob_created_in_tests(suite: SuiteRun) -> None:
    assert_deleted_or_refused(delete_blob(suite, CONFIGS[2]), may_be_gone=True, dockyard=202)


# 03_discovery_test.go, Content Discovery / Teardown: "Delete layer blob created in setup"
@spec()
def test_discovery_teardown_delete_layer_blob_created_in_setup(suite: SuiteRun) -> None:
    assert_deleted_or_refused(delete_blob(suite, LAYER), may_be_gone=True, dockyard=202)


# 03_discovery_test.go, Content Discovery / Teardown: "References teardown" (the manifests
# are gone already: the spec before deleted them, so 404 is dockyard's answer for them)
@spec()
def test_discovery_teardown_references_teardown(suite: SuiteRun) -> None:
    manifests = [REFS_INDEX, REFS_A_CONFIG, REFS_A_LAYER, MANIFESTS[4], REFS_B_CONFIG,
                 REFS_B_LAYER]

    def delete_manifests() -> None:
        for document in manifests:
            assert_deleted_or_refused(delete_manifest(suite, digest_of(document)),
                                      may_be_gone=True, dockyard=404)

    if suite.manifests_first:
        delete_manifests()
    for blob in (CONFIGS[4], REF_BLOB_A, REF_BLOB_B, EMPTY_JSON):
        assert_deleted_or_refused(delete_blob(suite, blob), may_be_gone=True, dockyard=202)
    if not suite.manifests_first:
        delete_manifests()


# ===== 04_management_test.go ===============================================================

# 04_management_test.go, Content Management / Setup: "Populate registry with test config
# blob"
@spec()
def test_management_setup_populate_registry_with_test_config_blob(suite: SuiteRun) -> None:
    assert is_success(upload(suite, CONFIGS[3]))


# 04_management_test.go, Content Management / Setup: "Populate registry with test layer"
@spec()
def test_management_setup_populate_registry_with_test_layer(suite: SuiteRun) -> None:
    assert is_success(upload(suite, LAYER))


# 04_management_test.go, Content Management / Setup: "Populate registry with test tag"
@spec()
def test_management_setup_populate_registry_with_test_tag(suite: SuiteRun) -> None:
    suite.tag_to_delete = TEST_TAG
    assert is_success(put_manifest(suite, suite.tag_to_delete, MANIFESTS[3]))


# 04_management_test.go, Content Management / Setup: "Check how many tags there are before
# anything gets deleted"
@spec()
def test_management_setup_check_how_many_tags_there_are_before_deleting(
        suite: SuiteRun) -> None:
    response = suite.http.get(f"/v2/{NAME}/tags/list")
    assert response.status_code == 200
    suite.management_tags = len(tag_list(response))
    assert suite.management_tags == 1  # dockyard: the earlier workflows left no tags


# 04_management_test.go, Content Management / Manifest delete: "DELETE request to manifest
# tag should return 202, unless tag deletion is disallowed (400/405)"
@spec()
def test_management_delete_request_to_manifest_tag_should_return_202(suite: SuiteRun) -> None:
    response = delete_manifest(suite, suite.tag_to_delete)
    assert response.status_code in (400, 202, 405), response.text
    if response.status_code == 400:
        assert response.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert response.status_code == 202  # dockyard: deletes the tag alone


# 04_management_test.go, Content Management / Manifest delete: "DELETE request to manifest
# (digest) should yield 202 response unless already deleted"
@spec()
def test_management_delete_request_to_manifest_digest_should_yield_202(suite: SuiteRun) -> None:
    response = delete_manifest(suite, digest_of(MANIFESTS[3]))
    assert response.status_code in (202, 404), response.text
    assert response.status_code == 202  # dockyard: the tag delete left the manifest


# 04_management_test.go, Content Management / Manifest delete: "GET request to deleted
# manifest URL should yield 404 response, unless delete is disallowed"
@spec()
def test_management_get_request_to_deleted_manifest_url_should_yield_404(
        suite: SuiteRun) -> None:
    response = get_manifest(suite, "GET", digest_of(MANIFESTS[3]), accept=None)
    assert response.status_code in (404, 200)
    assert response.status_code == 404  # dockyard: deletes are enabled


# 04_management_test.go, Content Management / Manifest delete: "GET request to tags list
# should reflect manifest deletion"
@spec()
def test_management_get_request_to_tags_list_should_reflect_manifest_deletion(
        suite: SuiteRun) -> None:
    response = suite.http.get(f"/v2/{NAME}/tags/list")
    assert response.status_code in (404, 200)
    expected = suite.management_tags - 1
    if response.status_code == 200:
        assert len(tag_list(response)) == expected
    else:
        assert expected == 0
    assert response.status_code == 200  # dockyard: an empty list for a known repository


# 04_management_test.go, Content Management / Blob delete: "DELETE request to blob URL should
# yield 202 response"
@spec()
def test_management_delete_request_to_blob_url_should_yield_202(suite: SuiteRun) -> None:
    for blob in (CONFIGS[3], LAYER):
        response = delete_blob(suite, blob)
        assert response.status_code in (202, 404, 405), response.text
        assert response.status_code == 202  # dockyard: deletes are enabled
    suite.blob_delete_allowed = response.status_code != 405


# 04_management_test.go, Content Management / Blob delete: "GET request to deleted blob URL
# should yield 404 response"
@spec()
def test_management_get_request_to_deleted_blob_url_should_yield_404(suite: SuiteRun) -> None:
    assert suite.blob_delete_allowed
    assert suite.http.get(f"/v2/{NAME}/blobs/{digest_of(CONFIGS[3])}").status_code == 404
