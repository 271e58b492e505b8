"""JSON answers byte for byte as distribution 2.8.2 writes them (its encoder ends most of
them with a newline), and `n` values distribution ignores are ignored here too."""

from __future__ import annotations

import pytest

from tests.support.oci import make_image, push_image
from tests.support.server import run_registry

SAME_BYTES = [
    "/v2/",
    "/v2/_catalog",
    "/v2/_catalog?n=abc",
    "/v2/_catalog?n=-1",
    "/v2/json/repo/tags/list",
    "/v2/json/repo/tags/list?n=abc",
    "/v2/no/such/repo/tags/list",
]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """Each path's body from distribution and from dockyard, serving the same store."""
    tmp = tmp_path_factory.mktemp("json-bodies")
    root = tmp / "store"
    bodies: dict[str, dict[str, bytes]] = {}
    with run_registry(tmp, root=root) as dockyard, dockyard.client() as client:
        for tag in ("v1", "v2"):
            push_image(client, "json/repo", tag, make_image())
        push_image(client, "json/other", "v1", make_image())
    for kind in ("distribution", "dockyard"):
        with run_registry(tmp, kind=kind, root=root) as running, running.client() as client:
            bodies[kind] = {path: client.get(path).content for path in SAME_BYTES}
            bodies[kind]["unknown manifest"] = client.get(
                "/v2/json/repo/manifests/nope").content
    return bodies


@pytest.mark.parametrize("path", SAME_BYTES)
def test_body_is_distributions_byte_for_byte(both: dict[str, dict[str, bytes]],
                                             path: str) -> None:
    assert both["dockyard"][path] == both["distribution"][path]


def test_error_bodies_end_with_a_newline(both: dict[str, dict[str, bytes]]) -> None:
    for kind in ("distribution", "dockyard"):
        assert both[kind]["unknown manifest"].endswith(b"}\n"), kind
