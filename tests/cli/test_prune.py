"""`dockyard prune`: retention rules remove tags by push time, name and age; protected tags
stay; a dry run changes nothing; the bytes it says a collection frees are what
`garbage-collect --delete-untagged` then frees; removals are tag deletes (webhooks sent);
the garbage collection schedule applies the rules too."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.oci import Image, digest_of, make_image, push_blob, push_image
from tests.support.receiver import endpoint_config, running_receiver
from tests.support.server import deep_merge, run_registry

DAY = 86400.0
# Tag -> days since it was pushed, for the store distribution writes below.
AGES = {"latest": 10, "release-1": 9, "t1": 8, "t2": 6, "t3": 4, "t4": 2, "t5": 1, "t6": 0.5}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True,
                          text=True, timeout=120)


def tag_link(root: Path, repository: str, tag: str) -> Path:
    return (root / "docker/registry/v2/repositories" / repository / "_manifests/tags" / tag
            / "current/link")


def write_config(path: Path, root: Path, retention: dict[str, Any],
                 extra: dict[str, Any] | None = None) -> Path:
    settings = deep_merge({"version": 0.1,
                           "storage": {"filesystem": {"rootdirectory": str(root)},
                                       "delete": {"enabled": True}},
                           "retention": retention}, extra or {})
    path.write_text(yaml.safe_dump(settings))
    return path


@pytest.fixture(scope="module")
def distribution_store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store distribution 2.8.2 wrote: `ci/app` with a tag per AGES entry (each its own
    image; t3 and t4 share a layer), and `other/app` with one old tag. Push times are set
    on the tag links, as distribution records no other."""
    tmp = tmp_path_factory.mktemp("prune-store")
    images: dict[str, Image] = {}
    shared = os.urandom(2048)
    with run_registry(tmp, kind="distribution") as registry, registry.client() as client:
        for tag in AGES:
            image = make_image(1)
            if tag in ("t3", "t4"):
                image = with_extra_layer(image, shared)
                push_blob(client, "ci/app", shared)
            push_image(client, "ci/app", tag, image)
            images[tag] = image
        push_image(client, "other/app", "old", make_image(1))
        root = registry.root
    now = time.time()
    for tag, days in AGES.items():
        os.utime(tag_link(root, "ci/app", tag), (now - days * DAY, now - days * DAY))
    old = now - 100 * DAY
    os.utime(tag_link(root, "other/app", "old"), (old, old))
    return {"root": root, "images": images, "shared": shared}


def with_extra_layer(image: Image, layer: bytes) -> Image:
    document = json.loads(image.manifest)
    document["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                               "digest": digest_of(layer), "size": len(layer)})
    return Image(image.config, [*image.layers, layer], json.dumps(document).encode(),
                 image.media_type)


def copy_store(source: Path, target: Path) -> Path:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    return target


@pytest.mark.parametrize("rule,removed", [
    ({"keeplast": 3}, {"release-1", "t1", "t2", "t3"}),
    ({"olderthan": "72h"}, {"release-1", "t1", "t2", "t3"}),
    ({"olderthan": "72h", "keeptags": "release-.*"}, {"t1", "t2", "t3"}),
    ({"keeplast": 2, "olderthan": "36h", "keeptags": "release-.*"}, {"t1", "t2", "t3", "t4"}),
], ids=["keeplast", "olderthan", "keeptags", "all-three"])
def test_each_rule_kind_in_a_dry_run(tmp_path: Path, distribution_store: dict[str, Any],
                                     rule: dict[str, Any], removed: set[str]) -> None:
    root = copy_store(distribution_store["root"], tmp_path / "store")
    before = sorted(path.name for path in (root / "docker/registry/v2/repositories/ci/app/"
                                            "_manifests/tags").iterdir())
    config = write_config(tmp_path / "config.yml", root,
                          {"protect": "latest", "rules": [{"repositories": "ci/*", **rule}]})
    result = run_cli("prune", "--dry-run", "--json", str(config))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["dryRun"] is True
    assert {item["tag"] for item in report["removed"]} == removed
    assert all(item["repository"] == "ci/app" for item in report["removed"])
    assert "latest" not in {item["tag"] for item in report["removed"]}  # protected
    after = sorted(path.name for path in (root / "docker/registry/v2/repositories/ci/app/"
                                           "_manifests/tags").iterdir())
    assert after == before  # a dry run removes nothing
    pushed = {item["tag"]: item["pushed"] for item in report["removed"]}
    for tag in removed:  # the push time is the tag link's: distribution records no other
        expected = time.time() - AGES[tag] * DAY
        moment = time.mktime(time.strptime(pushed[tag], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        assert abs(moment - expected) < 120, (tag, pushed[tag])


def test_prune_removes_the_tags_and_a_collection_frees_what_it_said(
        tmp_path: Path, distribution_store: dict[str, Any]) -> None:
    root = copy_store(distribution_store["root"], tmp_path / "store")
    config = write_config(tmp_path / "config.yml", root, {
        "protect": "latest|release-.*",
        "rules": [{"repositories": "ci/*", "keeplast": 2, "olderthan": "72h"}]})
    table = run_cli("prune", "--dry-run", str(config))
    assert table.returncode == 0, table.stderr
    assert "would remove 3 of 8 tags in 1 repositories" in table.stdout
    done = run_cli("prune", "--json", str(config))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {item["tag"] for item in report["removed"]} == {"t1", "t2", "t3"}
    images: dict[str, Image] = distribution_store["images"]
    # t1..t3 alone reach their manifests, configs and layers; t3's second layer is t4's
    # too and stays.
    expected = sum(len(blob) for tag in ("t1", "t2", "t3")
                   for blob in (images[tag].manifest, images[tag].config,
                                *images[tag].layers[:1]))
    assert report["freedBytes"] == expected
    assert report["freedBlobs"] == 9
    with run_registry(tmp_path, root=root) as registry, registry.client() as client:
        tags = client.get("/v2/ci/app/tags/list").json()["tags"]
        assert sorted(tags) == ["latest", "release-1", "t4", "t5", "t6"]
        assert client.get("/v2/other/app/tags/list").json()["tags"] == ["old"]
    collected = run_cli("garbage-collect", "--delete-untagged", "--grace-period", "0",
                        "--json", str(config))
    assert collected.returncode == 0, collected.stderr
    assert json.loads(collected.stdout)["bytes_freed"] == report["freedBytes"]
    again = run_cli("prune", "--json", str(config))
    assert json.loads(again.stdout)["removed"] == []
    # Another registry pushes to the store dockyard has indexed: prune reads that too.
    with run_registry(tmp_path, kind="distribution", root=root) as other, \
            other.client() as client:
        push_image(client, "ci/app", "t7", make_image(1))
    seen = run_cli("prune", "--dry-run", "--json", str(config))
    assert json.loads(seen.stdout)["tags"] == 6, seen.stdout  # t7 with the five left


def test_removals_are_tag_deletes_with_webhooks_and_the_schedule_applies_the_rules(
        tmp_path: Path) -> None:
    """Push times the index recorded (pushes through dockyard, a second apart) order the
    tags; each removal sends the delete event any tag delete sends."""
    with running_receiver() as receiver:
        retention = {"retention": {"rules": [{"repositories": "app", "keeplast": 1}]}}
        config = deep_merge(deep_merge(endpoint_config(receiver, ignore={"actions": ["push"]}),
                                       retention), {})
        with run_registry(tmp_path, config=config) as registry:
            with registry.client() as client:
                for tag in ("v1", "v2", "v3"):
                    push_image(client, "app", tag, make_image(1))
                    time.sleep(1.1)
            result = run_cli("prune", "--json", str(registry.config_path))
            assert result.returncode == 0, result.stderr
            assert [item["tag"] for item in json.loads(result.stdout)["removed"]] == [
                "v2", "v1"]
            events = receiver.wait_for(lambda got: len(got) == 2)
            assert [(e["action"], e["target"]["tag"]) for e in events] == [
                ("delete", "v2"), ("delete", "v1")]
            assert "retention: removed tag app:v1" in result.stderr
        # The schedule: storage.gc with the same rules removes what is old by itself.
        scheduled = deep_merge(retention, {"storage": {"gc": {
            "enabled": True, "interval": "1s", "deleteuntagged": True, "graceperiod": "0s"}}})
        with run_registry(tmp_path, config=scheduled, root=registry.root) as registry:
            with registry.client() as client:
                push_image(client, "app", "v4", make_image(1))
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    tags = client.get("/v2/app/tags/list").json()["tags"]
                    if tags == ["v4"]:
                        break
                    time.sleep(0.3)
                assert tags == ["v4"]
            assert "retention: removed tag app:v3" in registry.wait_for_log(
                    "retention: removed tag app:v3")


@pytest.mark.parametrize("retention,key", [
    ({"rules": [{"repositories": "a/*"}]}, "retention.rules[0]"),
    ({"rules": [{"repositories": "a/*", "keeplast": -1}]}, "retention.rules[0].keeplast"),
    ({"rules": [{"repositories": "a/*", "olderthan": "soon"}]},
     "retention.rules[0].olderthan"),
    ({"rules": [{"repositories": "a/*", "keeplast": 1, "keeptags": "("}]},
     "retention.rules[0].keeptags"),
    ({"rules": [{"keeplast": 1}]}, "retention.rules[0].repositories"),
    ({"protect": "["}, "retention.protect"),
    ({"rule": []}, "retention.rule"),
    ({"rules": [{"repositories": "a/*", "olderthan": 30}]}, "retention.rules[0].olderthan"),
])
def test_a_bad_rule_is_refused_naming_the_key(tmp_path: Path, retention: dict[str, Any],
                                              key: str) -> None:
    config = write_config(tmp_path / "config.yml", tmp_path / "store", retention)
    result = run_cli("prune", "--dry-run", str(config))
    assert result.returncode == 2, result.stderr
    assert key in result.stderr, result.stderr
