"""The metadata index against the store it indexes: random histories, restarts, rebuilds."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.index.sqlite import index_path, open_index
from dockyard.registry import catalog
from dockyard.registry.reindex import scan_repository
from dockyard.storage.filesystem import FilesystemDriver
from tests.support.oci import make_image, push_image
from tests.support.server import RunningRegistry, require_tool, run_registry

REPOS = ["alpha", "team/beta", "team/beta/gamma"]
TAGS = ["latest", "v1", "v2", "sha256-" + "b" * 64]

operation = st.one_of(
    st.tuples(st.just("push"), st.sampled_from(REPOS), st.sampled_from(TAGS)),
    st.tuples(st.just("untag"), st.sampled_from(REPOS), st.sampled_from(TAGS)),
    st.tuples(st.just("delete"), st.sampled_from(REPOS), st.sampled_from(TAGS)),
    st.tuples(st.just("retag"), st.sampled_from(REPOS), st.sampled_from(TAGS)),
    st.tuples(st.just("referrer"), st.sampled_from(REPOS), st.sampled_from(TAGS)),
)


def walk_store(root: Path) -> dict[str, dict[str, str]]:
    """Every repository's tags, by a full walk of the store (no index)."""
    driver = FilesystemDriver(str(root))

    async def walk() -> dict[str, dict[str, str]]:
        found = {}
        for name in await catalog.list_repositories(driver):
            found[name] = (await scan_repository(driver, name)).tags
        return found

    return asyncio.run(walk())


def served(client: httpx.Client) -> dict[str, dict[str, str]]:
    """Every repository's tags as the API (answering from the index) reports them."""
    found = {}
    for name in client.get("/v2/_catalog").json()["repositories"]:
        tags = client.get(f"/v2/{name}/tags/list").json()["tags"]
        found[name] = {
            tag: client.head(f"/v2/{name}/manifests/{tag}").headers["Docker-Content-Digest"]
            for tag in tags
        }
    return found


def apply(client: httpx.Client, prefix: str, step: tuple[str, str, str]) -> None:
    action, repo, tag = step
    name = f"{prefix}/{repo}"
    if action == "push":
        push_image(client, name, tag, make_image(layer_count=1, layer_size=64))
    elif action == "untag":
        client.delete(f"/v2/{name}/manifests/{tag}")
    elif action == "delete":
        head = client.head(f"/v2/{name}/manifests/{tag}")
        if head.status_code == 200:
            client.delete(f"/v2/{name}/manifests/{head.headers['Docker-Content-Digest']}")
    elif action == "retag":
        got = client.get(f"/v2/{name}/manifests/{tag}")
        if got.status_code == 200:
            client.put(f"/v2/{name}/manifests/moved-{tag[:20]}", content=got.content,
                       headers={"Content-Type": got.headers["Content-Type"]})
    elif action == "referrer":
        got = client.get(f"/v2/{name}/manifests/{tag}")
        if got.status_code == 200:
            image = make_image(layer_count=1, layer_size=16, extra={"subject": {
                "mediaType": got.headers["Content-Type"],
                "digest": got.headers["Docker-Content-Digest"], "size": len(got.content)}})
            push_image(client, name, image.digest, image)
            listed = client.get(
                f"/v2/{name}/referrers/{got.headers['Docker-Content-Digest']}").json()
            assert image.digest in {item["digest"] for item in listed["manifests"]}


counter = iter(range(1_000_000))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(operation, min_size=1, max_size=12))
def test_random_histories_keep_index_and_store_equal(registry: RunningRegistry,
                                                     steps: list[tuple[str, str, str]]) -> None:
    prefix = f"prop{next(counter)}"
    with registry.client() as client:
        for step in steps:
            apply(client, prefix, step)
        walked = {name: tags for name, tags in walk_store(registry.root).items()
                  if name.startswith(prefix + "/")}
        seen = {name: tags for name, tags in served(client).items()
                if name.startswith(prefix + "/")}
    assert seen == walked


def test_changes_made_while_stopped_are_picked_up(tmp_path: Path) -> None:
    root = tmp_path / "store"
    kept, dropped = make_image(), make_image()
    with run_registry(tmp_path, root=root) as running, running.client() as client:
        push_image(client, "offline/kept", "v1", kept)
        push_image(client, "offline/dropped", "v1", dropped)
        push_image(client, "offline/kept", "old", dropped)
    repositories = root / "docker/registry/v2/repositories"
    # Another program edits the store while dockyard is down.
    shutil.rmtree(repositories / "offline/dropped")
    shutil.rmtree(repositories / "offline/kept/_manifests/tags/old")
    shutil.copytree(repositories / "offline/kept", repositories / "offline/copied")
    with run_registry(tmp_path, root=root) as running, running.client() as client:
        assert client.get("/v2/_catalog").json()["repositories"] == \
            ["offline/copied", "offline/kept"]
        assert client.get("/v2/offline/kept/tags/list").json()["tags"] == ["v1"]
        assert client.get("/v2/offline/copied/tags/list").json()["tags"] == ["v1"]
        assert client.get("/v2/offline/dropped/tags/list").status_code == 404
    assert "re-read" in running.logs()


def test_missing_index_is_rebuilt_at_start(tmp_path: Path) -> None:
    root = tmp_path / "store"
    image = make_image()
    with run_registry(tmp_path, root=root) as running, running.client() as client:
        push_image(client, "rebuilt/repo", "v1", image)
        signature = make_image(extra={"subject": {"mediaType": image.media_type,
                                                  "digest": image.digest,
                                                  "size": len(image.manifest)}})
        push_image(client, "rebuilt/repo", signature.digest, signature)
    Path(index_path(str(root))).unlink()
    with run_registry(tmp_path, root=root) as running, running.client() as client:
        assert client.get("/v2/rebuilt/repo/tags/list").json()["tags"] == ["v1"]
        referrers = client.get(f"/v2/rebuilt/repo/referrers/{image.digest}").json()
        assert [item["digest"] for item in referrers["manifests"]] == [signature.digest]


def test_index_rebuild_of_a_distribution_store(tmp_path: Path) -> None:
    """`dockyard index rebuild` on a store distribution wrote gives distribution's answers."""
    require_tool("docker-registry")
    root = tmp_path / "store"
    names = ["library/hello-world", "x/y", "zeta"]
    with run_registry(tmp_path, "distribution", root=root) as running, \
            running.client() as client:
        for number, name in enumerate(names):
            for tag in ("latest", f"v{number}"):
                push_image(client, name, tag, make_image(media_type=
                                                         "application/vnd.docker.distribution"
                                                         ".manifest.v2+json"))
        expected = {name: sorted(client.get(f"/v2/{name}/tags/list").json()["tags"])
                    for name in names}
        expected_catalog = client.get("/v2/_catalog").json()["repositories"]
    config = running.config_path
    result = subprocess.run([sys.executable, "-m", "dockyard", "index", "rebuild", str(config)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "3 repositories" in result.stderr
    index = open_index(str(root))
    try:
        assert asyncio.run(index.repositories()) == expected_catalog
        for name in names:
            assert asyncio.run(index.tags(name)) == expected[name]
    finally:
        index.close()


def test_a_tag_ending_in_tmp_survives_an_index_rebuild(tmp_path: Path) -> None:
    """".tmp" is a valid end of a tag; the store's listing must not take it for one of the
    filesystem driver's temporary files, or a rebuild drops the tag."""
    root = tmp_path / "store"
    image = make_image()
    with run_registry(tmp_path, root=root) as running, running.client() as client:
        push_image(client, "team/app", "v1.tmp", image)
        push_image(client, "team/app", "v2", image)
    result = subprocess.run([sys.executable, "-m", "dockyard", "index", "rebuild",
                             str(running.config_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    with run_registry(tmp_path, root=root) as running, running.client() as client:
        assert client.get("/v2/team/app/tags/list").json()["tags"] == ["v1.tmp", "v2"]
        assert client.head("/v2/team/app/manifests/v1.tmp").status_code == 200
