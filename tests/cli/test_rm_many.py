"""`dockyard rm` with several images, and with tag patterns and a dry run.

Exit codes: 0 everything was deleted, 1 something failed (named on stderr, the rest still
done), 2 usage error (nothing done).
"""

from __future__ import annotations

from typing import Any

from tests.cli.test_remote import has_manifest, remote_tags
from tests.support.oci import make_image, push_image
from tests.support.server import RunningRegistry


def test_rm_several_images(cli: Any, any_registry: RunningRegistry) -> None:
    first, second, third, kept = make_image(), make_image(), make_image(), make_image()
    host = any_registry.host
    with any_registry.client() as client:
        push_image(client, "a", "1", first)
        push_image(client, "b", "2", second)
        push_image(client, "c", "3", third)
        push_image(client, "c", "4", kept)
        result = cli("rm", "--insecure", f"{host}/a:1", f"{host}/b:2", f"{host}/c@{third.digest}")
        assert result.code == 0, result.err
        # dockyard deletes the tags alone; distribution deletes their manifests.
        said = ([f"Removed tag {host}/a:1", f"Removed tag {host}/b:2"]
                if any_registry.kind == "dockyard" else
                [f"Deleted manifest {host}/a@{first.digest}",
                 f"Deleted manifest {host}/b@{second.digest}"])
        for line in (*said, f"Deleted manifest {host}/c@{third.digest}"):
            assert line in result.out
        assert remote_tags(client, "a") == [] and remote_tags(client, "b") == []
        assert remote_tags(client, "c") == ["4"]
        assert not has_manifest(client, "c", third.digest)
        assert has_manifest(client, "c", kept.digest)


def test_rm_several_reports_each_failure_and_does_the_rest(
        cli: Any, any_registry: RunningRegistry) -> None:
    first, second = make_image(), make_image()
    host = any_registry.host
    with any_registry.client() as client:
        push_image(client, "a", "1", first)
        push_image(client, "b", "2", second)

        # A usage error anywhere: nothing is done.
        usage = cli("rm", "--insecure", f"{host}/a:1", f"{host}/b")
        assert usage.code == 2, usage.err
        assert remote_tags(client, "a") == ["1"]

        result = cli("rm", "--insecure", "--json", f"{host}/a:1", f"{host}/nothing:9",
                     f"{host}/b:2")
        assert result.code == 1, result.err
        assert f"{host}/nothing:9" in result.err and "not found" in result.err
        assert f"{host}/a:1" not in result.err
        report = result.json()
        assert report["failed"] == [f"{host}/nothing:9"]
        assert [r["reference"] for r in report["results"]] == [
            f"{host}/a:1", f"{host}/nothing:9", f"{host}/b:2"]
        assert "not found" in report["results"][1]["error"]
        assert report["results"][0]["removedTags"] == ["1"]
        assert remote_tags(client, "a") == [] and remote_tags(client, "b") == []


def test_rm_tags_by_pattern_with_dry_run(cli: Any, any_registry: RunningRegistry) -> None:
    old, older, current = make_image(), make_image(), make_image()
    tags = {"v1.0": old, "v1.1": old, "v1.2": older, "v2.0": current, "latest": current}
    host = any_registry.host
    with any_registry.client() as client:
        for tag, image in tags.items():
            push_image(client, "app", tag, image)

        dry = cli("rm", "--insecure", "--tags", "v1.*", "--dry-run", f"{host}/app")
        assert dry.code == 0, dry.err
        for tag in ("v1.0", "v1.1", "v1.2"):
            assert f"{host}/app:{tag}" in dry.out
        assert "v2.0" not in dry.out and "latest" not in dry.out
        assert remote_tags(client, "app") == sorted(tags)  # nothing deleted

        dry_json = cli("rm", "--insecure", "--json", "-n", "--tags", "v1.*", f"{host}/app")
        assert dry_json.code == 0, dry_json.err
        planned = dry_json.json()
        assert planned["failed"] == []
        assert [r["reference"] for r in planned["results"]] == [
            f"{host}/app:v1.0", f"{host}/app:v1.1", f"{host}/app:v1.2"]
        assert all(r["dryRun"] for r in planned["results"])
        assert remote_tags(client, "app") == sorted(tags)

        done = cli("rm", "--insecure", "--tags", "v1.*", f"{host}/app")
        assert done.code == 0, done.err
        assert remote_tags(client, "app") == ["latest", "v2.0"]
        # dockyard deleted the tags alone (gc -m takes the manifests); distribution cannot.
        assert has_manifest(client, "app", older.digest) == (any_registry.kind == "dockyard")
        assert has_manifest(client, "app", current.digest)

        nothing = cli("rm", "--insecure", "--tags", "v9.*", f"{host}/app")
        assert nothing.code == 0, nothing.err
        assert "no tag" in nothing.out and "v9.*" in nothing.out


def test_rm_pattern_sharing_a_manifest_with_an_unmatched_tag(
        cli: Any, any_registry: RunningRegistry) -> None:
    current, other = make_image(), make_image()
    host = any_registry.host
    with any_registry.client() as client:
        push_image(client, "app", "rc-1", current)
        push_image(client, "app", "latest", current)
        push_image(client, "app", "rc-2", other)
        result = cli("rm", "--insecure", "--tags", "rc-*", f"{host}/app")
        if any_registry.kind == "dockyard":
            # dockyard deletes tags alone: latest and its manifest stay.
            assert result.code == 0, result.err
            assert remote_tags(client, "app") == ["latest"]
            return
        # distribution deletes by digest: rc-1 would take latest along, so it is refused
        # (named), while rc-2 goes; exit 1.
        assert result.code == 1, result.err
        assert f"{host}/app:rc-1" in result.err and "latest" in result.err
        assert remote_tags(client, "app") == ["latest", "rc-1"]


def test_rm_usage_errors(cli: Any) -> None:
    for args in (["rm", "--tags", "v*", "localhost:5000/app:v1"],
                 ["rm", "--tags", "v*", "--all-tags", "localhost:5000/app"],
                 ["rm", "localhost:5000/app:v1", "localhost:5000/other"],
                 ["rm"]):
        result = cli(*args)
        assert result.code == 2, (args, result.out, result.err)
        assert result.err.strip(), args
