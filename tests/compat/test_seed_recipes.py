"""The shell recipes operators use with registry:2 (curl, grep, awk), run verbatim against
dockyard and distribution 2.8.2 side by side: what the pipelines print must be the same."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.oci import DOCKER_MANIFEST, Image, make_image, push_image
from tests.support.server import RunningRegistry, require_tool, run_registry

ACCEPT = f"Accept: {DOCKER_MANIFEST}"


def shell(command: str) -> bytes:
    return subprocess.run(["bash", "-c", command], capture_output=True, check=True,
                          timeout=60).stdout


@pytest.fixture(scope="module")
def image() -> Image:
    return make_image(media_type=DOCKER_MANIFEST)


@pytest.fixture(scope="module", params=["dockyard", "distribution"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           image: Image) -> Iterator[RunningRegistry]:
    require_tool("curl")
    tmp = tmp_path_factory.mktemp(request.param)
    with run_registry(tmp, request.param) as running, running.client() as client:
        push_image(client, "sonnet-official", "latest", image)
        push_image(client, "sonnet-official", "keep", image)
        yield running


def test_digest_recipe_prints_the_digest(served: RunningRegistry, image: Image) -> None:
    """The guide's first step of a delete, byte for byte (curl -v ends header lines with
    CRLF, so awk's third field ends with a carriage return, for both registries)."""
    printed = shell(
        f'curl -v --silent -H "{ACCEPT}" -X GET  {served.url}/v2/sonnet-official/manifests/'
        "latest 2>&1 | grep Docker-Content-Digest | awk '{print ($3)}'")
    assert printed == f"{image.digest}\r\n".encode()


def test_head_recipe_shows_the_same_header_names(served: RunningRegistry,
                                                 image: Image) -> None:
    printed = shell(f'curl --head -H "{ACCEPT}" {served.url}/v2/sonnet-official/manifests/keep')
    lines = printed.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    assert headers["Docker-Content-Digest"] == image.digest
    assert headers["Content-Type"] == DOCKER_MANIFEST
    assert headers["Docker-Distribution-Api-Version"] == "registry/2.0"
    assert headers["Etag"] == f'"{image.digest}"'
    assert headers["Content-Length"] == str(len(image.manifest))
    # X-Content-Type-Options comes from http.headers (dockyard's default has it), and
    # Last-Modified (the push time) and X-Request-Id (the access log's id) only from dockyard.
    assert set(headers) - {"X-Content-Type-Options", "Last-Modified", "X-Request-Id"} == {
        "Content-Length", "Content-Type", "Date", "Docker-Content-Digest",
        "Docker-Distribution-Api-Version", "Etag"}


def test_delete_recipe_then_tags(served: RunningRegistry, image: Image) -> None:
    """Steps two and three: delete by the digest the pipeline printed."""
    digest = shell(
        f'curl -v --silent -H "{ACCEPT}" -X GET  {served.url}/v2/sonnet-official/manifests/'
        "latest 2>&1 | grep Docker-Content-Digest | awk '{print ($3)}'").decode().strip()
    printed = shell(f'curl -s -o /dev/null -w "%{{http_code}}" -H "{ACCEPT}" -X DELETE '
                    f"{served.url}/v2/sonnet-official/manifests/{digest}")
    assert printed == b"202"
    gone = shell(f'curl -s -o /dev/null -w "%{{http_code}}" -H "{ACCEPT}" '
                 f"{served.url}/v2/sonnet-official/manifests/latest")
    assert gone == b"404"


def test_a_wrong_path_in_a_recipe_answers_like_distribution(tmp_path: Path) -> None:
    """A DELETE with deletes off is 405 UNSUPPORTED in both (the guide's note)."""
    for kind in ("dockyard", "distribution"):
        settings = {"storage": {"delete": {"enabled": False}}}
        (tmp_path / kind).mkdir()
        with run_registry(tmp_path / kind, kind, config=settings) as running:
            printed = shell(f"curl -s -o /dev/null -w '%{{http_code}}' -X DELETE "
                            f"{running.url}/v2/sonnet-official/manifests/sha256:" + "a" * 64)
            assert printed == b"405", kind
