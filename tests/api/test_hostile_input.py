"""Hostile input against a running dockyard: path traversal and odd encodings in names,
non-ASCII and overlong names and tags, oversized, broken, deeply nested and mistyped
manifests, bad digests, bad Range and Content-Range headers, bodies that do not match their
Content-Length, huge headers and malformed request lines.

Every request gets a 4xx (or, for what the HTTP layer cannot parse, a bare 4xx or a closed
connection), never a 500; errors carry the spec's JSON body and code, and no traceback or
path of the store. The server answers /v2/ after each request, and when the module is done
the store is as it was before: every file and directory with its content, and the index's
rows (its -wal/-shm files legitimately change on reads and checkpoints, its rows must not).
Requests go out byte for byte over a socket (tests/support/rawhttp.py), so nothing
normalises `..` or escapes bytes on the way."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    Image,
    descriptor,
    digest_of,
    make_image,
    push_image,
)
from tests.support.rawhttp import RawResponse, build_request, exchange
from tests.support.server import RunningRegistry, Storage, run_registry

REPO = "hostile/repo"
UPLOAD_DATA = b"hello"
MAX_MANIFEST = 4 * 1024 * 1024
# The spec code a case may get, or PROTOCOL: refused by the HTTP layer before dockyard
# sees the request (a bare 4xx, or the connection closed).
PROTOCOL = ""
INDEX_DIR = "dockyard"  # beside docker/: dockyard's index (README, "How it is built")


@dataclass(frozen=True)
class Target:
    running: RunningRegistry
    image: Image
    layer: str  # digest of a blob of REPO
    upload: str  # path of an open upload holding UPLOAD_DATA

    def path(self, template: str) -> str:
        return template.format(repo=REPO, layer=self.layer, upload=self.upload)


Build = Callable[[Target], bytes]


@dataclass(frozen=True)
class Hostile:
    id: str
    request: Build
    statuses: tuple[int, ...]
    codes: tuple[str, ...]
    half_close: bool = False  # the body ends early: shut our side after sending


def send(method: str, path: str, headers: Iterable[tuple[str, bytes | str]] = (),
         body: bytes | Build | None = None) -> Build:
    """A request builder; `path` is a template of Target.path, sent as UTF-8 bytes."""
    fixed_headers = tuple(headers)

    def build(target: Target) -> bytes:
        data = body(target) if callable(body) else body
        return build_request(method, target.path(path).encode(), target.running.host,
                             fixed_headers, data)

    return build


def verbatim(head: bytes) -> Build:
    """A request whose first lines are given whole (broken request lines and framing)."""
    return lambda target: head.replace(b"{host}", target.running.host.encode())


def manifest_with(**changes: Any) -> Build:
    """The pushed image's manifest with top-level keys replaced (None removes one)."""

    def build(target: Target) -> bytes:
        document = json.loads(target.image.manifest)
        for key, value in changes.items():
            if value is None:
                document.pop(key, None)
            else:
                document[key] = value
        return json.dumps(document).encode()

    return build


def layer_with(**changes: Any) -> Build:
    """The pushed manifest with its first layer descriptor changed."""

    def build(target: Target) -> bytes:
        document = json.loads(target.image.manifest)
        document["layers"][0].update(changes)
        return json.dumps(document).encode()

    return build


def size_text(text: str) -> Build:
    """The first layer's size written as `text`, which json.dumps would not write."""
    return lambda target: layer_with(size=0)(target).replace(b'"size": 0',
                                                             b'"size": ' + text.encode())


def nested_annotations(depth: int) -> Build:
    def build(target: Target) -> bytes:
        document = json.loads(target.image.manifest)
        text = json.dumps(document)
        return (text[:-1] + ',"annotations":{"a":' + "[" * depth + "]" * depth + "}}").encode()

    return build


def index_with(entry: Any) -> Build:
    return lambda target: json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                      "manifests": entry(target)}).encode()


def child(target: Target, **extra: Any) -> list[dict[str, Any]]:
    return [descriptor(OCI_MANIFEST, target.image.manifest, **extra)]


OCI = [("Content-Type", OCI_MANIFEST)]
PUT_MANIFEST = "/v2/{repo}/manifests/hostile"


def put_manifest(body: bytes | Build, content_type: str | bytes = OCI_MANIFEST) -> Build:
    return send("PUT", PUT_MANIFEST, [("Content-Type", content_type)], body)


def oversize_chunked(target: Target) -> bytes:
    chunk = b"x" * 65536
    encoded = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * (MAX_MANIFEST // len(chunk) + 2)
    return build_request("PUT", target.path(PUT_MANIFEST).encode(), target.running.host,
                         [*OCI, ("Transfer-Encoding", "chunked")], encoded + b"0\r\n\r\n")


SHA_UPPER = "sha256:" + "A" * 64
GOOD_DIGEST = digest_of(b"anything")

NAMES = [
    Hostile("dot segments", send("GET", "/v2/../../etc/passwd/tags/list"), (400,),
            ("NAME_INVALID",)),
    Hostile("encoded dot segments", send("GET", "/v2/%2e%2e/%2e%2e/etc/tags/list"), (400,),
            ("NAME_INVALID",)),
    Hostile("dot segments inside a name", send("GET", "/v2/a/../b/manifests/latest"), (400,),
            ("NAME_INVALID",)),
    Hostile("encoded dots inside a name",
            send("PUT", "/v2/{repo}/%2E%2E/%2e%2e/%2e%2e/x/manifests/v1", OCI,
                 lambda t: t.image.manifest), (400,), ("NAME_INVALID",)),
    Hostile("encoded slashes", send("GET", "/v2/a%2f..%2f..%2fetc/tags/list"), (400,),
            ("NAME_INVALID",)),
    Hostile("backslashes", send("GET", "/v2/a\\..\\..\\etc/tags/list"), (400,),
            ("NAME_INVALID",)),
    Hostile("encoded backslashes", send("GET", "/v2/a%5c..%5c..%5cetc/tags/list"), (400,),
            ("NAME_INVALID",)),
    Hostile("NUL byte", send("GET", "/v2/a%00b/tags/list"), (400,), ("NAME_INVALID",)),
    Hostile("encoded unicode", send("GET", "/v2/caf%c3%a9/tags/list"), (400,),
            ("NAME_INVALID",)),
    Hostile("raw UTF-8", send("GET", "/v2/café/manifests/latest"), (400,),
            ("NAME_INVALID",)),
    Hostile("fullwidth letters", send("GET", "/v2/\uff52\uff45\uff50\uff4f/tags/list"), (400,),
            ("NAME_INVALID",)),
    Hostile("right-to-left override", send("GET", "/v2/a%e2%80%aeb/tags/list"), (400,),
            ("NAME_INVALID",)),
    Hostile("invalid UTF-8", verbatim(b"GET /v2/a\xff\xfe/tags/list HTTP/1.1\r\n"
                                      b"Host: {host}\r\nConnection: close\r\n\r\n"),
            (400,), ("NAME_INVALID", PROTOCOL)),
    Hostile("name of 256 characters", send("GET", "/v2/" + "a" * 256 + "/tags/list"), (400,),
            ("NAME_INVALID",)),
    Hostile("name of 80 components", send("GET", "/v2/" + "/".join(["abcd"] * 80)
                                          + "/manifests/latest"), (400,), ("NAME_INVALID",)),
    Hostile("store directory as a component", send("GET", "/v2/{repo}/_manifests/tags/list"),
            (400,), ("NAME_INVALID",)),
    Hostile("upload into a traversal", send("POST", "/v2/../../tmp/x/blobs/uploads/",
                                            body=b""), (400,), ("NAME_INVALID",)),
    Hostile("upload id of dots", send("GET", "/v2/{repo}/blobs/uploads/%2e%2e"), (404,),
            ("BLOB_UPLOAD_UNKNOWN",)),
    Hostile("upload id with backslashes", send("PATCH", "/v2/{repo}/blobs/uploads/"
                                               "..%5c..%5cdata", body=b"xyz"), (404,),
            ("BLOB_UPLOAD_UNKNOWN",)),
    Hostile("upload id with encoded slashes",
            send("DELETE", "/v2/{repo}/blobs/uploads/..%2f..%2f_layers"), (404,),
            ("NOT_FOUND",)),
]

TAGS = [
    Hostile("encoded unicode tag", send("GET", "/v2/{repo}/manifests/t%c3%bc"), (404,),
            ("MANIFEST_UNKNOWN",)),
    Hostile("raw UTF-8 tag", send("GET", "/v2/{repo}/manifests/tü"), (404,),
            ("MANIFEST_UNKNOWN",)),
    Hostile("push to a unicode tag", send("PUT", "/v2/{repo}/manifests/tü", OCI,
                                          lambda t: t.image.manifest), (400,),
            ("TAG_INVALID",)),
    Hostile("tag of 129 characters", send("GET", "/v2/{repo}/manifests/" + "a" * 129), (404,),
            ("MANIFEST_UNKNOWN",)),
    Hostile("push to a tag of 129 characters",
            send("PUT", "/v2/{repo}/manifests/" + "a" * 129, OCI, lambda t: t.image.manifest),
            (400,), ("TAG_INVALID",)),
    Hostile("delete the tag ..", send("DELETE", "/v2/{repo}/manifests/%2e%2e"), (400,),
            ("TAG_INVALID",)),
    Hostile("tag starting with a dot", send("GET", "/v2/{repo}/manifests/.hidden"), (404,),
            ("MANIFEST_UNKNOWN",)),
]

DIGESTS = [
    Hostile("unknown algorithm", send("GET", "/v2/{repo}/blobs/md5:" + "a" * 32), (400,),
            ("DIGEST_INVALID",)),
    Hostile("short digest", send("GET", "/v2/{repo}/blobs/sha256:abc"), (400,),
            ("DIGEST_INVALID",)),
    Hostile("uppercase hex", send("GET", "/v2/{repo}/blobs/" + SHA_UPPER), (400,),
            ("DIGEST_INVALID",)),
    Hostile("one hex digit too many", send("GET", "/v2/{repo}/blobs/sha256:" + "a" * 65),
            (400,), ("DIGEST_INVALID",)),
    Hostile("sha512 of sha256's length", send("GET", "/v2/{repo}/blobs/sha512:" + "a" * 64),
            (400,), ("DIGEST_INVALID",)),
    Hostile("not hex", send("GET", "/v2/{repo}/blobs/sha256:" + "z" * 64), (400,),
            ("DIGEST_INVALID",)),
    Hostile("digest of 5000 characters", send("GET", "/v2/{repo}/blobs/sha256:" + "a" * 5000),
            (400,), ("DIGEST_INVALID",)),
    Hostile("uppercase manifest digest", send("GET", "/v2/{repo}/manifests/" + SHA_UPPER),
            (400,), ("DIGEST_INVALID",)),
    Hostile("delete by uppercase digest", send("DELETE", "/v2/{repo}/blobs/" + SHA_UPPER),
            (400,), ("DIGEST_INVALID",)),
    Hostile("referrers of a bad digest", send("GET", "/v2/{repo}/referrers/sha256:zz"),
            (400,), ("DIGEST_INVALID",)),
    Hostile("one-request upload, bad digest",
            send("POST", "/v2/{repo}/blobs/uploads/?digest=md5:abc", body=b"data"), (400,),
            ("DIGEST_INVALID",)),
    Hostile("finish an upload with uppercase hex",
            send("PUT", "{upload}?digest=" + SHA_UPPER, body=b""), (400,),
            ("DIGEST_INVALID",)),
    Hostile("finish an upload with an empty digest", send("PUT", "{upload}?digest=", body=b""),
            (400,), ("DIGEST_INVALID",)),
    Hostile("manifest pushed under another digest",
            send("PUT", "/v2/{repo}/manifests/" + GOOD_DIGEST, OCI, lambda t: t.image.manifest),
            (400,), ("DIGEST_INVALID",)),
]

INVALID = ("MANIFEST_INVALID",)
MANIFESTS = [
    Hostile("manifest over 4 MiB", put_manifest(b"{" + b" " * MAX_MANIFEST + b"}"), (413,),
            ("SIZE_INVALID", "MANIFEST_INVALID")),
    Hostile("manifest over 4 MiB, chunked", oversize_chunked, (413,),
            ("SIZE_INVALID", "MANIFEST_INVALID")),
    Hostile("broken JSON", put_manifest(b'{"schemaVersion": 2,'), (400,), INVALID),
    Hostile("not UTF-8", put_manifest(b"\xff\xfe\x00{"), (400,), INVALID),
    Hostile("empty body", put_manifest(b""), (400,), INVALID),
    Hostile("a JSON array", put_manifest(b"[]"), (400,), INVALID),
    Hostile("100,000 open brackets", put_manifest(b"[" * 100_000), (400,), INVALID),
    Hostile("100,000 nested arrays", put_manifest(b"[" * 100_000 + b"]" * 100_000), (400,),
            INVALID),
    Hostile("100,000 nested objects", put_manifest(b'{"a":' * 100_000 + b"1"
                                                   + b"}" * 100_000), (400,), INVALID),
    Hostile("40 levels in annotations", put_manifest(nested_annotations(40)), (400,), INVALID),
    Hostile("size of 2**63", put_manifest(layer_with(size=2**63)), (400,), INVALID),
    Hostile("size of 4000 digits", put_manifest(layer_with(size=int("9" * 4000))), (400,),
            INVALID),
    Hostile("size of 5000 digits", put_manifest(size_text("9" * 5000)), (400,), INVALID),
    Hostile("NaN size", put_manifest(size_text("NaN")), (400,), INVALID),
    Hostile("schemaVersion as a string", put_manifest(manifest_with(schemaVersion="2")),
            (400,), INVALID),
    Hostile("config as a list", put_manifest(manifest_with(config=[])), (400,), INVALID),
    Hostile("layers as an object", put_manifest(manifest_with(layers={})), (400,), INVALID),
    Hostile("null layer", put_manifest(manifest_with(layers=[None])), (400,), INVALID),
    Hostile("size as a string", put_manifest(layer_with(size="12")), (400,), INVALID),
    Hostile("negative size", put_manifest(layer_with(size=-1)), (400,), INVALID),
    Hostile("size as a boolean", put_manifest(layer_with(size=True)), (400,), INVALID),
    Hostile("digest as a number", put_manifest(layer_with(digest=5)), (400,), INVALID),
    Hostile("uppercase digest in a descriptor", put_manifest(layer_with(digest=SHA_UPPER)),
            (400,), INVALID),
    Hostile("mediaType as a number", put_manifest(manifest_with(mediaType=5)), (400,),
            INVALID),
    Hostile("annotation values not strings", put_manifest(manifest_with(annotations={"a": 1})),
            (400,), INVALID),
    Hostile("subject as a string", put_manifest(manifest_with(subject="x")), (400,), INVALID),
    Hostile("artifactType as a list", put_manifest(manifest_with(artifactType=[])), (400,),
            INVALID),
    Hostile("index entries as a string", put_manifest(index_with(lambda t: "x"), OCI_INDEX),
            (400,), INVALID),
    Hostile("platform as a string", put_manifest(index_with(
        lambda t: child(t, platform="linux/amd64")), OCI_INDEX), (400,), INVALID),
    Hostile("platform os as a number", put_manifest(index_with(
        lambda t: child(t, platform={"os": 1, "architecture": "amd64"})), OCI_INDEX), (400,),
            INVALID),
    Hostile("unknown Content-Type", put_manifest(manifest_with(mediaType=None),
                                                 "application/x-evil"), (400,), INVALID),
    Hostile("unknown mediaType", put_manifest(manifest_with(
        mediaType="application/vnd.evil+json"), "application/json"), (400,), INVALID),
    Hostile("Content-Type and mediaType disagree", put_manifest(
        lambda t: t.image.manifest, "text/html"), (400,), INVALID),
    Hostile("schema1", put_manifest(manifest_with(
        mediaType="application/vnd.docker.distribution.manifest.v1+json"), "application/json"),
        (400,), INVALID),
    Hostile("Content-Type of 5000 bytes", put_manifest(lambda t: t.image.manifest,
                                                       b"\xff" * 5000), (400,), INVALID),
    Hostile("unknown blob", put_manifest(layer_with(digest="sha256:" + "e" * 64)), (400,),
            ("MANIFEST_BLOB_UNKNOWN",)),
]


def blob_range(value: str | bytes) -> Build:
    return send("GET", "/v2/{repo}/blobs/{layer}", [("Range", value)])


def chunk_range(value: str, body: bytes = b"xyz") -> Build:
    return send("PATCH", "{upload}", [("Content-Range", value),
                                      ("Content-Type", "application/octet-stream")], body)


RANGE = ("RANGE_INVALID",)
RANGES = [
    Hostile("inverted range", blob_range("bytes=50-10"), (416,), RANGE),
    Hostile("range past the end", blob_range("bytes=99999999999999999999999-"), (416,), RANGE),
    Hostile("negative range", blob_range("bytes=-1-5"), (416,), RANGE),
    Hostile("double minus", blob_range("bytes=--5"), (416,), RANGE),
    Hostile("empty suffix", blob_range("bytes=-0"), (416,), RANGE),
    Hostile("garbage range", blob_range("garbage"), (416,), RANGE),
    Hostile("another unit", blob_range("items=0-5"), (416,), RANGE),
    Hostile("non-ASCII range", blob_range(b"bytes=\xff-\xfe"), (416,), RANGE),
    Hostile("empty range", blob_range("bytes="), (416,), RANGE),
    Hostile("inverted chunk", chunk_range("9-5"), (416,), RANGE),
    Hostile("huge chunk", chunk_range("5-99999999999999999999999"), (416,), RANGE),
    Hostile("negative chunk", chunk_range("-1-1"), (416,), RANGE),
    Hostile("garbage chunk", chunk_range("garbage"), (416,), RANGE),
    Hostile("chunk not at the end", chunk_range("0-2"), (416,), ("BLOB_UPLOAD_INVALID",)),
    Hostile("chunk longer than its body", chunk_range("5-9"), (416,), RANGE),
    Hostile("finishing chunk with a garbage range",
            send("PUT", "{upload}?digest=" + GOOD_DIGEST, [("Content-Range", "x-y")], b"xyz"),
            (416,), RANGE),
]

# The server learns that the body ended early when the client shuts its side; it answers
# the spec's error to a client still listening.
SHORT = ("SIZE_INVALID",)
LENGTHS = [
    Hostile("manifest shorter than its Content-Length",
            send("PUT", PUT_MANIFEST, [*OCI, ("Content-Length", "100")], b"{}"), (400,), SHORT,
            half_close=True),
    Hostile("chunk shorter than its Content-Length",
            send("PATCH", "{upload}", [("Content-Length", "100")], b"xyz"), (400,), SHORT,
            half_close=True),
    Hostile("one-request upload shorter than its Content-Length",
            send("POST", "/v2/{repo}/blobs/uploads/?digest=" + GOOD_DIGEST,
                 [("Content-Length", "100")], b"xyz"), (400,), SHORT, half_close=True),
    Hostile("broken chunked encoding",
            send("PATCH", "{upload}", [("Transfer-Encoding", "chunked")],
                 b"3\r\nxyz\r\nzz\r\n"), (400,), SHORT, half_close=True),
    Hostile("manifest longer than its Content-Length",
            send("PUT", PUT_MANIFEST, [*OCI, ("Content-Length", "2")], b"{}garbage"), (400,),
            ("MANIFEST_INVALID",)),
    Hostile("Content-Length not a number",
            send("PUT", PUT_MANIFEST, [*OCI, ("Content-Length", "abc")], b"{}"), (400,),
            ("SIZE_INVALID", PROTOCOL)),
    Hostile("negative Content-Length",
            send("PATCH", "{upload}", [("Content-Length", "-5")], b"xyz"), (400,),
            ("SIZE_INVALID", PROTOCOL)),
    Hostile("two Content-Lengths",
            send("PATCH", "{upload}", [("Content-Length", "3"), ("Content-Length", "4")],
                 b"xyz"), (400,), ("SIZE_INVALID", PROTOCOL)),
    Hostile("Content-Length of 23 digits",
            send("PATCH", "{upload}", [("Content-Length", "9" * 23)], b"xyz"), (400, 413),
            ("SIZE_INVALID", PROTOCOL)),
]

# isdigit() is true for these, int() refuses them (superscripts), or int() reads them
# (Arabic-Indic digits) where the spec means ASCII digits.
PAGINATION = [
    Hostile("Content-Length of a superscript two",
            send("PATCH", "{upload}", [("Content-Length", b"\xb2")], b"xy"), (400,),
            ("SIZE_INVALID", PROTOCOL)),
]
# Page sizes distribution cannot read are ignored, as distribution 2.8 ignores them: the
# whole listing, never a 500 (isdigit() takes a superscript two that int() refuses).
UNREADABLE_PAGE_SIZES = [("/v2/_catalog", "%C2%B2"), ("/v2/{repo}/tags/list", "%C2%B2"),
                         ("/v2/{repo}/tags/list", "%D9%A3%D9%A4"), ("/v2/_catalog", "-1")]

REQUEST_LINES = [
    Hostile("10 MB header", send("GET", "/v2/", [("X-Padding", "a" * 10_000_000)]),
            (400, 431), (PROTOCOL,)),
    Hostile("10,000 headers", send("GET", "/v2/", [(f"X-H{n}", "v") for n in range(10_000)]),
            (400, 431), (PROTOCOL,)),
    Hostile("garbage request line", verbatim(b"GARBAGE\r\n\r\n"), (400,), (PROTOCOL,)),
    Hostile("request line without a target", verbatim(b"GET\r\nHost: {host}\r\n\r\n"),
            (400,), (PROTOCOL,)),
    Hostile("unknown HTTP version", verbatim(b"GET /v2/ HTTP/9.9\r\nHost: {host}\r\n\r\n"),
            (400, 505), (PROTOCOL,)),
    Hostile("NUL in the target", verbatim(b"GET /v2/\x00/tags/list HTTP/1.1\r\n"
                                          b"Host: {host}\r\n\r\n"), (400,),
            ("NAME_INVALID", PROTOCOL)),
    Hostile("target of 100 KB", send("GET", "/v2/" + "a/" * 50_000 + "tags/list"),
            (400, 414), ("NAME_INVALID", PROTOCOL)),
    Hostile("binary method", verbatim(b"\xff\xfe /v2/ HTTP/1.1\r\nHost: {host}\r\n\r\n"),
            (400, 405), ("UNSUPPORTED", PROTOCOL)),
    Hostile("unknown method", send("FROB", "/v2/{repo}/tags/list"), (405,), ("UNSUPPORTED",)),
]


def index_rows(root: Path) -> str:
    """The index's content, row by row, read without writing anything (its bookkeeping
    apart: the background check against the store notes when it last ran)."""
    path = root / INDEX_DIR / "index.sqlite"
    if not path.exists():
        return ""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return "\n".join(line for line in db.iterdump()
                         if not line.startswith('INSERT INTO "meta"'))


def store_state(running: RunningRegistry) -> dict[str, str]:
    """Every file below the store's root (with a fingerprint of its content) and, on a
    filesystem, every directory, and the index's rows in place of the index files."""
    root = running.root
    state = running.store_files()
    if running.storage.bucket is None:
        state.update((path.relative_to(root).as_posix(), "directory")
                     for path in root.rglob("*") if path.is_dir()
                     and path.relative_to(root).parts[0] != INDEX_DIR)
    state["index rows"] = hashlib.sha256(index_rows(root).encode()).hexdigest()
    return state


def assert_serving(running: RunningRegistry) -> None:
    assert running.process.poll() is None, f"the server died:\n{running.logs()[-3000:]}"
    assert httpx.get(running.url + "/v2/", timeout=30).status_code == 200


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, storage: Storage) -> Iterator[Target]:
    """A dockyard of its own holding one image and one open upload. When the module's tests
    are done, it must still serve, unharmed, with its store unchanged."""
    with run_registry(tmp_path_factory.mktemp("hostile"), storage=storage) as running:
        image = make_image()
        with running.client() as client:
            push_image(client, REPO, "v1", image)
            location = client.post(f"/v2/{REPO}/blobs/uploads/").headers["Location"]
            appended = client.patch(location, content=UPLOAD_DATA, headers={
                "Content-Range": f"0-{len(UPLOAD_DATA) - 1}"})
            assert appended.status_code == 202
        before = store_state(running)
        yield Target(running, image, digest_of(image.layers[0]), urlsplit(location).path)
        assert_serving(running)
        assert store_state(running) == before, "hostile requests changed the store"
        logs = running.logs()
        assert "Traceback" not in logs and "unexpected error" not in logs, logs[-3000:]


def check_answer(target: Target, case: Hostile, response: RawResponse) -> None:
    root = str(target.running.root)
    assert root.encode() not in response.body
    assert str(Path(root).parent).encode() not in response.body
    assert b"Traceback" not in response.body
    assert len(response.body) < 4096, "the error echoes too much of the request"
    if response.status is None:
        assert PROTOCOL in case.codes, "the connection closed without an answer"
        return
    assert response.status in case.statuses, (response.status, response.body[:300])
    if "json" not in response.headers.get("content-type", ""):
        assert PROTOCOL in case.codes, (response.status, response.headers)
        return
    body = response.json()
    assert isinstance(body.get("errors"), list) and len(body["errors"]) == 1, body
    error = body["errors"][0]
    assert set(error) == {"code", "message", "detail"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["code"] in case.codes, error


CASES = [*NAMES, *TAGS, *DIGESTS, *MANIFESTS, *RANGES, *LENGTHS, *PAGINATION,
         *REQUEST_LINES]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_refused_with_a_4xx(target: Target, case: Hostile) -> None:
    response = exchange(target.running.host, case.request(target), half_close=case.half_close)
    check_answer(target, case, response)
    assert_serving(target.running)


@pytest.mark.parametrize(("path", "n"), UNREADABLE_PAGE_SIZES)
def test_unreadable_page_sizes_are_ignored(target: Target, path: str, n: str) -> None:
    url = path.format(repo=REPO)
    whole = exchange(target.running.host, build_request("GET", url, target.running.host))
    response = exchange(target.running.host,
                        build_request("GET", f"{url}?n={n}", target.running.host))
    assert response.status == whole.status == 200
    assert response.body == whole.body
    assert_serving(target.running)


def test_cases_have_unique_names() -> None:
    names = [case.id for case in CASES]
    assert len(names) == len(set(names))


def test_encoded_slash_is_the_same_name(target: Target) -> None:
    """`%2F` decodes to `/` before routing, as in distribution: the same repository,
    reached without escaping it."""
    plain = exchange(target.running.host, build_request(
        "GET", f"/v2/{REPO}/tags/list", target.running.host))
    encoded = exchange(target.running.host, build_request(
        "GET", f"/v2/{REPO.replace('/', '%2F')}/tags/list", target.running.host))
    assert plain.status == encoded.status == 200
    assert encoded.json() == plain.json() == {"name": REPO, "tags": ["v1"]}


def test_huge_range_end_is_clamped(target: Target) -> None:
    """A last byte past the end is allowed (RFC 9110) and means up to the end."""
    response = exchange(target.running.host, blob_range("bytes=0-" + "9" * 30)(target))
    assert response.status == 206
    assert response.body == target.image.layers[0]


def test_many_ordinary_headers_are_fine(target: Target) -> None:
    response = exchange(target.running.host, send(
        "GET", "/v2/{repo}/tags/list", [(f"X-Header-{n}", "v" * 100) for n in range(90)])(
        target))
    assert response.status == 200


@pytest.mark.parametrize("headers", [
    [("Host", "evil host with spaces")],
    [("X-Forwarded-Proto", "javascript"), ("X-Forwarded-Host", b"evil\xff.example")],
    [("Forwarded", 'proto=\\;host="a b c"')],
    [("X-Forwarded-Host", "evil.example/path?x=<script>")],
])
def test_hostile_host_headers_stay_out_of_location(target: Target,
                                                   headers: list[tuple[str, str | bytes]]
                                                   ) -> None:
    """Location is built from Host and the forwarding headers; values that are not a
    scheme or a host[:port] are ignored rather than echoed."""
    host = target.running.host
    extra = [item for item in headers if item[0] != "Host"]
    given_host = next((value for name, value in headers if name == "Host"), host)
    request = build_request("GET", target.upload, str(given_host), extra)
    response = exchange(host, request)
    assert response.status == 204
    location = urlsplit(response.headers["location"])
    assert location.scheme == "http"
    assert location.netloc == host
    assert location.path == target.upload
