"""`dockyard ls`, `tags`, `inspect`, `rm` and `du` against dockyard and distribution 2.8.2.

The commands run as subprocesses over real HTTP; content is pushed with plain API calls.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from tests.cli.conftest import image_size, image_with
from tests.support.oci import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
    digest_of,
    make_image,
    make_index,
    push_image,
    random_blob,
)
from tests.support.server import RunningRegistry, free_port, require_tool, run_registry

MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])


def put_index(client: httpx.Client, name: str, tag: str, document: bytes,
              media_type: str = OCI_INDEX) -> str:
    response = client.put(f"/v2/{name}/manifests/{tag}", content=document,
                          headers={"Content-Type": media_type})
    assert response.status_code == 201, response.text
    return digest_of(document)


def has_manifest(client: httpx.Client, name: str, reference: str) -> bool:
    response = client.head(f"/v2/{name}/manifests/{reference}",
                           headers={"Accept": MANIFEST_ACCEPT})
    assert response.status_code in (200, 404), response.status_code
    return response.status_code == 200


def remote_tags(client: httpx.Client, name: str) -> list[str]:
    response = client.get(f"/v2/{name}/tags/list")
    if response.status_code == 404:
        return []
    return sorted(response.json()["tags"] or [])  # distribution: null when none are left


def without_push_time(shown: dict[str, Any], registry: RunningRegistry) -> dict[str, Any]:
    """`shown` less its push time, which dockyard gives and distribution does not (see
    tests/cli/test_push_time.py)."""
    pushed = shown.pop("pushed", None)
    assert (pushed is None) == (registry.kind == "distribution"), pushed
    return shown


# -- ls, tags -----------------------------------------------------------------------------

def test_ls_follows_catalog_pages(cli: Any, any_registry: RunningRegistry) -> None:
    names = ["alpha", "beta/one", "beta/two", "gamma", "zeta/deep/name"]
    image = make_image(layer_count=1, layer_size=64)
    with any_registry.client() as client:
        for name in names:
            push_image(client, name, "latest", image)
    host = any_registry.host
    result = cli("ls", "--insecure", "--page-size", "2", "--json", host)
    assert result.code == 0, result.err
    assert result.json() == {"registry": host, "repositories": names}

    table = cli("ls", f"http://{host}", "--page-size", "2")
    assert table.code == 0, table.err
    assert [line.strip() for line in table.out.splitlines()
            if line.strip() in names] == names
    assert "REPOSITORY" in table.out

    from_env = cli("ls", "--insecure", "--json", env={"DOCKYARD_REGISTRY": host})
    assert from_env.code == 0, from_env.err
    assert from_env.json()["repositories"] == names


def test_tags_paginated_with_digests(cli: Any, any_registry: RunningRegistry) -> None:
    first, second = make_image(layer_count=1), make_image(layer_count=1)
    tags = {"1.0": first, "1.1": first, "2.0": second, "latest": second, "rc": second}
    with any_registry.client() as client:
        for tag, image in tags.items():
            push_image(client, "app", tag, image)
    reference = f"{any_registry.host}/app"
    result = cli("tags", "--insecure", "--page-size", "2", "--json", "--digests", reference)
    assert result.code == 0, result.err
    listed = result.json()
    pushed = listed.pop("pushed", None)  # dockyard only: tests/cli/test_push_time.py
    assert (pushed is None) == (any_registry.kind == "distribution")
    assert listed == {"repository": reference, "tags": sorted(tags),
                      "digests": {tag: image.digest for tag, image in tags.items()}}

    plain = cli("tags", "--insecure", reference)
    assert plain.code == 0, plain.err
    assert {line.strip() for line in plain.out.splitlines()} >= set(tags)


# -- inspect ------------------------------------------------------------------------------

@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_inspect_image(cli: Any, any_registry: RunningRegistry, media_type: str) -> None:
    layers = [random_blob(3000), random_blob(5000)]
    image = image_with(layers, media_type)
    with any_registry.client() as client:
        push_image(client, "tools/image", "v1", image)
    config = json.loads(image.manifest)["config"]
    expected = {
        "reference": f"{any_registry.host}/tools/image:v1",
        "digest": image.digest,
        "mediaType": media_type,
        "manifestSize": len(image.manifest),
        "platform": "linux/amd64",
        "config": {"digest": digest_of(image.config), "mediaType": config["mediaType"],
                   "size": len(image.config)},
        "layers": [{"digest": digest_of(layer), "mediaType": descriptor["mediaType"],
                    "size": len(layer)}
                   for layer, descriptor in zip(layers, json.loads(image.manifest)["layers"],
                                                strict=True)],
        "size": len(image.config) + 8000,
    }
    result = cli("inspect", "--insecure", "--json", f"{any_registry.host}/tools/image:v1")
    assert result.code == 0, result.err
    assert without_push_time(result.json(), any_registry) == expected

    by_digest = cli("inspect", "--insecure", "--json",
                    f"{any_registry.host}/tools/image@{image.digest}")
    assert by_digest.code == 0, by_digest.err
    assert without_push_time(by_digest.json(), any_registry) == {**expected,
                                "reference": f"{any_registry.host}/tools/image@{image.digest}"}

    table = cli("inspect", "--insecure", f"{any_registry.host}/tools/image:v1")
    assert table.code == 0, table.err
    for text in (image.digest, media_type, "linux/amd64", *(digest_of(x) for x in layers),
                 "2.9 KiB", "4.9 KiB"):
        assert text in table.out


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_LIST])
def test_inspect_index(cli: Any, any_registry: RunningRegistry, media_type: str) -> None:
    child_type = OCI_MANIFEST if media_type == OCI_INDEX else DOCKER_MANIFEST
    shared = random_blob(4096)
    amd64 = image_with([shared, random_blob(1000)], child_type, "amd64")
    arm64 = image_with([shared, random_blob(2000)], child_type, "arm64")
    index = make_index([amd64, arm64], media_type)
    with any_registry.client() as client:
        push_image(client, "multi", "amd64-only", amd64)
        push_image(client, "multi", "arm64-only", arm64)
        put_index(client, "multi", "v1", index, media_type)
    result = cli("inspect", "--insecure", "--json", f"{any_registry.host}/multi:v1")
    assert result.code == 0, result.err
    assert without_push_time(result.json(), any_registry) == {
        "reference": f"{any_registry.host}/multi:v1",
        "digest": digest_of(index),
        "mediaType": media_type,
        "manifestSize": len(index),
        "platforms": [
            {"platform": "linux/amd64", "digest": amd64.digest, "mediaType": child_type,
             "manifestSize": len(amd64.manifest), "size": image_size(amd64)},
            {"platform": "linux/arm64", "digest": arm64.digest, "mediaType": child_type,
             "manifestSize": len(arm64.manifest), "size": image_size(arm64)},
        ],
        # The shared layer once.
        "size": len(amd64.config) + len(arm64.config) + 4096 + 1000 + 2000,
    }
    table = cli("inspect", "--insecure", f"{any_registry.host}/multi:v1")
    assert table.code == 0, table.err
    for text in (digest_of(index), "linux/amd64", "linux/arm64", amd64.digest, arm64.digest):
        assert text in table.out


# -- rm -----------------------------------------------------------------------------------

def test_rm_tag_on_dockyard_removes_only_the_tag(cli: Any, tmp_path: Path) -> None:
    with run_registry(tmp_path) as running, running.client() as client:
        image = make_image()
        push_image(client, "app", "v1", image)
        push_image(client, "app", "stable", image)
        result = cli("rm", "--insecure", "--json", f"{running.host}/app:v1")
        assert result.code == 0, result.err
        assert result.json() == {"reference": f"{running.host}/app:v1", "repository": "app",
                                 "method": "tag", "removedTags": ["v1"],
                                 "removedManifests": []}
        assert remote_tags(client, "app") == ["stable"]
        assert has_manifest(client, "app", image.digest)

        # The last tag: still by tag, the manifest stays (garbage-collect -m removes it).
        result = cli("rm", "--insecure", f"{running.host}/app:stable")
        assert result.code == 0, result.err
        assert "Removed tag" in result.out and "stable" in result.out
        assert remote_tags(client, "app") == []
        assert has_manifest(client, "app", image.digest)


def test_rm_tag_on_distribution_falls_back_to_digest(cli: Any, tmp_path: Path) -> None:
    with run_registry(tmp_path, kind="distribution") as running, running.client() as client:
        alone, other = make_image(), make_image()
        push_image(client, "app", "v1", alone)
        push_image(client, "app", "v2", other)
        result = cli("rm", "--insecure", "--json", f"{running.host}/app:v1")
        assert result.code == 0, result.err
        assert result.json() == {"reference": f"{running.host}/app:v1", "repository": "app",
                                 "method": "digest", "removedTags": ["v1"],
                                 "removedManifests": [alone.digest]}
        assert remote_tags(client, "app") == ["v2"]
        assert not has_manifest(client, "app", alone.digest)
        assert has_manifest(client, "app", other.digest)


def test_rm_tag_shared_with_other_tags_needs_force(cli: Any, tmp_path: Path) -> None:
    with run_registry(tmp_path, kind="distribution") as running, running.client() as client:
        image, other = make_image(), make_image()
        for tag in ("v1", "latest", "stable"):
            push_image(client, "app", tag, image)
        push_image(client, "app", "v2", other)
        reference = f"{running.host}/app:v1"

        refused = cli("rm", "--insecure", reference)
        assert refused.code == 1
        assert "latest" in refused.err and "stable" in refused.err
        assert "--force" in refused.err and image.digest in refused.err
        assert remote_tags(client, "app") == ["latest", "stable", "v1", "v2"]

        forced = cli("rm", "--insecure", "-f", reference)
        assert forced.code == 0, forced.err
        assert image.digest in forced.out
        assert "Removed tags: v1, latest, stable" in forced.out
        assert remote_tags(client, "app") == ["v2"]
        assert not has_manifest(client, "app", image.digest)


def test_rm_by_digest_names_every_tag_it_removes(cli: Any,
                                                 any_registry: RunningRegistry) -> None:
    image, other = make_image(), make_image()
    with any_registry.client() as client:
        push_image(client, "app", "a", image)
        push_image(client, "app", "b", image)
        push_image(client, "app", "c", other)
        reference = f"{any_registry.host}/app@{image.digest}"
        result = cli("rm", "--insecure", "--json", reference)
        assert result.code == 0, result.err
        assert result.json() == {"reference": reference, "repository": "app",
                                 "method": "digest", "removedTags": ["a", "b"],
                                 "removedManifests": [image.digest]}
        assert remote_tags(client, "app") == ["c"]
        assert not has_manifest(client, "app", image.digest)


def test_rm_all_tags(cli: Any, any_registry: RunningRegistry) -> None:
    amd64, arm64, single = make_image(), make_image(), make_image()
    index = make_index([amd64, arm64])
    with any_registry.client() as client:
        push_image(client, "app", "amd64", amd64)
        push_image(client, "app", "arm64", arm64)
        push_image(client, "app", "single", single)
        push_image(client, "app", "also-single", single)
        index_digest = put_index(client, "app", "multi", index)
        push_image(client, "keep", "v1", single)

        result = cli("rm", "--insecure", "--all-tags", "--json", f"{any_registry.host}/app")
        assert result.code == 0, result.err
        removed = result.json()
        assert removed["method"] == "digest"
        assert sorted(removed["removedTags"]) == ["also-single", "amd64", "arm64", "multi",
                                                  "single"]
        assert sorted(removed["removedManifests"]) == sorted(
            [amd64.digest, arm64.digest, single.digest, index_digest])
        assert remote_tags(client, "app") == []
        for digest in (amd64.digest, arm64.digest, single.digest, index_digest):
            assert not has_manifest(client, "app", digest)
        # Another repository with the same image is untouched.
        assert remote_tags(client, "keep") == ["v1"]
        assert has_manifest(client, "keep", single.digest)

        again = cli("rm", "--insecure", "--all-tags", f"{any_registry.host}/app")
        assert again.code == 0, again.err
        assert "has no tagged manifests: nothing to remove" in again.out


# -- du -----------------------------------------------------------------------------------

def test_du_counts_shared_blobs_once(cli: Any, any_registry: RunningRegistry) -> None:
    base = random_blob(10_000)
    first = image_with([base, random_blob(1000)])
    second = image_with([base, random_blob(2000)])
    arm = image_with([base, random_blob(3000)], arch="arm64")
    index = make_index([first, arm])
    with any_registry.client() as client:
        push_image(client, "one", "latest", first)
        push_image(client, "one", "again", first)  # the same manifest: counted once
        push_image(client, "one/multi", "arm", arm)
        push_image(client, "one/multi", first.digest, first)  # untagged, in the index
        put_index(client, "one/multi", "v1", index)
        push_image(client, "two", "latest", second)

    def blobs(*images: Any) -> dict[str, int]:
        found: dict[str, int] = {}
        for image in images:
            found[image.digest] = len(image.manifest)
            found[digest_of(image.config)] = len(image.config)
            found.update({digest_of(layer): len(layer) for layer in image.layers})
        return found

    one = blobs(first)
    multi = {**blobs(first, arm), digest_of(index): len(index)}
    two = blobs(second)
    total = {**one, **multi, **two}
    # In more than one repository: the first image (its manifest, config and both layers)
    # and the base layer.
    shared = {digest: size for digest, size in total.items()
              if sum(digest in repository for repository in (one, multi, two)) > 1}
    assert len(shared) == 4
    result = cli("du", "--insecure", "--json", any_registry.host)
    assert result.code == 0, result.err
    assert result.json() == {
        "registry": any_registry.host,
        "repositories": [
            {"repository": "one", "tags": 2, "manifests": 1, "blobs": 3,
             "size": sum(one.values()), "missing": []},
            {"repository": "one/multi", "tags": 2, "manifests": 3, "blobs": 5,
             "size": sum(multi.values()), "missing": []},
            {"repository": "two", "tags": 1, "manifests": 1, "blobs": 3,
             "size": sum(two.values()), "missing": []},
        ],
        "total": {"size": sum(total.values()), "manifests": 4, "blobs": 7,
                  "shared": sum(one.values()) + sum(multi.values()) + sum(two.values())
                  - sum(total.values()),
                  "sharedBlobs": len(shared), "sharedSize": sum(shared.values())},
    }
    assert sum(total.values()) < sum(one.values()) + sum(multi.values()) + sum(two.values())

    single = cli("du", "--insecure", "--json", f"{any_registry.host}/two")
    assert single.code == 0, single.err
    assert [r["repository"] for r in single.json()["repositories"]] == ["two"]
    assert single.json()["total"]["size"] == sum(two.values())

    table = cli("du", "--insecure", any_registry.host)
    assert table.code == 0, table.err
    assert "KiB" in table.out and "total" in table.out
    exact = cli("du", "--insecure", "--bytes", any_registry.host)
    repositories_sum = sum(one.values()) + sum(multi.values()) + sum(two.values())
    assert (f"total {sum(total.values())} B; {sum(shared.values())} B of it (4 blobs) is "
            "shared by several repositories and counted once (the repository sizes above "
            f"add up to {repositories_sum} B)") in " ".join(exact.out.split())


# -- errors -------------------------------------------------------------------------------

def test_unreachable_registry(cli: Any) -> None:
    port = free_port()  # nothing listens there
    for args in (["ls"], ["tags", "x"], ["inspect", "x:1"], ["rm", "x:1"], ["du"]):
        target = f"127.0.0.1:{port}" + ("" if args[0] in ("ls", "du") else "/" + args[1])
        result = cli(args[0], "--insecure", target, "--timeout", "5")
        assert result.code == 1, (args, result.err)
        assert f"cannot reach registry 127.0.0.1:{port}" in result.err
        assert result.out == ""


def test_not_found(cli: Any, any_registry: RunningRegistry) -> None:
    with any_registry.client() as client:
        push_image(client, "app", "v1", make_image())
    host = any_registry.host
    for args in (["tags", f"{host}/nothing/here"],
                 ["inspect", f"{host}/app:v9"],
                 ["inspect", f"{host}/app@sha256:{'0' * 64}"],
                 ["inspect", f"{host}/nothing:v1"],
                 ["rm", f"{host}/app:v9"],
                 ["du", f"{host}/nothing"]):
        result = cli(args[0], "--insecure", *args[1:])
        assert result.code == 1, (args, result.out, result.err)
        assert "not found" in result.err, args


def test_deletes_disabled(cli: Any, tmp_path: Path) -> None:
    for kind in ("dockyard", "distribution"):
        config = {"storage": {"delete": {"enabled": False}}}
        with run_registry(tmp_path / kind, kind=kind, config=config) as running:
            image = make_image()
            with running.client() as client:
                push_image(client, "app", "v1", image)
            for reference in (f"{running.host}/app:v1", f"{running.host}/app@{image.digest}"):
                result = cli("rm", "--insecure", reference)
                assert result.code == 1, (kind, result.err)
                assert "deletes are disabled" in result.err
                assert "storage.delete.enabled: true" in result.err
                assert "REGISTRY_STORAGE_DELETE_ENABLED=true" in result.err
            with running.client() as client:
                assert remote_tags(client, "app") == ["v1"]


def test_usage_errors(cli: Any) -> None:
    for args in (["tags", "localhost:5000"],  # no repository
                 ["tags", "localhost:5000/UPPER"],
                 ["inspect", "localhost:5000/app"],  # no tag
                 ["inspect", "localhost:5000/app:bad:tag"],
                 ["rm", "localhost:5000/app"],  # neither tag nor --all-tags
                 ["rm", "--all-tags", "localhost:5000/app:v1"],
                 ["ls", "not a host"],
                 ["ls", "--password", "x", "localhost:5000"],
                 ["ls", "--username", "x", "localhost:5000"],  # no password, no terminal
                 ["inspect", "--ca-cert", "/nonexistent.pem", "localhost:5000/app:v1"],
                 ["du", "--frobnicate"]):
        result = cli(*args)
        assert result.code == 2, (args, result.out, result.err)
        assert result.err.strip(), args


def test_https_with_ca_cert(cli: Any, tmp_path: Path) -> None:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    for pem in issued.cert_chain_pems:
        pem.write_to_path(str(cert), append=True)
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    config = {"http": {"tls": {"certificate": str(cert), "key": str(key)}}}
    with run_registry(tmp_path, config=config, scheme="https") as running:
        with running.client(verify=False) as client:
            push_image(client, "secure", "v1", make_image())
        untrusted = cli("ls", running.host)
        assert untrusted.code == 1
        assert "certificate" in untrusted.err and "--ca-cert" in untrusted.err
        for args in (["--ca-cert", str(ca_file), running.host],
                     ["--ca-cert", str(ca_file), f"https://{running.host}"],
                     ["--insecure", f"https://{running.host}"]):  # https, unverified
            result = cli("ls", "--json", *args)
            assert result.code == 0, (args, result.err)
            assert result.json()["repositories"] == ["secure"]
        plain = cli("ls", "--insecure", running.host, "--timeout", "5")
        assert plain.code == 1


# -- authentication (distribution's auth.htpasswd) ----------------------------------------

def htpasswd_entry(user: str, password: str) -> str:
    try:
        import bcrypt
    except ImportError:
        tool = require_tool("htpasswd")
        return subprocess.run([tool, "-nbB", user, password], capture_output=True, text=True,
                              check=True).stdout.strip()
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}"


def test_basic_auth(cli: Any, tmp_path: Path) -> None:
    users = tmp_path / "htpasswd"
    users.write_text(htpasswd_entry("alice", "s3cret") + "\n")
    config = {"auth": {"htpasswd": {"realm": "test", "path": str(users)}}}
    with run_registry(tmp_path, kind="distribution", config=config) as running:
        with running.client(auth=("alice", "s3cret")) as client:
            image = make_image()
            push_image(client, "private/app", "v1", image)
        host = running.host
        expected = {"registry": host, "repositories": ["private/app"]}

        anonymous = cli("ls", "--insecure", host)
        assert anonymous.code == 1
        assert "requires authentication" in anonymous.err
        assert "--username" in anonymous.err and "DOCKYARD_USERNAME" in anonymous.err

        wrong = cli("ls", "--insecure", "-u", "alice", "-p", "nope", host)
        assert wrong.code == 1
        assert "refused the credentials of user 'alice'" in wrong.err

        flags = cli("ls", "--insecure", "--json", "--username", "alice", "--password", "s3cret",
                    host)
        assert flags.code == 0, flags.err
        assert flags.json() == expected

        environment = {"DOCKYARD_USERNAME": "alice", "DOCKYARD_PASSWORD": "s3cret"}
        from_env = cli("inspect", "--insecure", "--json", f"{host}/private/app:v1",
                       env=environment)
        assert from_env.code == 0, from_env.err
        assert from_env.json()["digest"] == image.digest
        # Only the password in the environment, the user on the command line.
        mixed = cli("ls", "--insecure", "-u", "alice", host,
                    env={"DOCKYARD_PASSWORD": "s3cret"})
        assert mixed.code == 0, mixed.err

        token = base64.b64encode(b"alice:s3cret").decode()
        docker_dir = tmp_path / "docker-config"
        docker_dir.mkdir()
        (docker_dir / "config.json").write_text(json.dumps(
            {"auths": {"other.example:5000": {"auth": "eDp5"}, host: {"auth": token}}}))
        from_docker = cli("du", "--insecure", "--json", host,
                          env={"DOCKER_CONFIG": str(docker_dir)})
        assert from_docker.code == 0, from_docker.err
        assert from_docker.json()["repositories"][0]["repository"] == "private/app"

        # ~/.docker/config.json, with the key written as a URL as docker login may write it.
        home = tmp_path / "home"
        (home / ".docker").mkdir(parents=True)
        (home / ".docker" / "config.json").write_text(json.dumps(
            {"auths": {f"http://{host}/v2/": {"auth": token}}}))
        from_home = cli("tags", "--insecure", "--json", f"{host}/private/app",
                        env={"HOME": str(home)})
        assert from_home.code == 0, from_home.err
        assert from_home.json()["tags"] == ["v1"]

        removed = cli("rm", "--insecure", "--json", f"{host}/private/app:v1",
                      env=environment)
        assert removed.code == 0, removed.err
        assert removed.json()["removedManifests"] == [image.digest]
