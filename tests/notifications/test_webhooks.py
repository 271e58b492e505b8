"""Webhooks (distribution's `notifications`): events are written to the index with the change
they describe and delivered at least once, in order, to every endpoint, across receiver
outages, worker processes, a killed server and several instances sharing a PostgreSQL index.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.oci import OCI_INDEX, OCI_MANIFEST, Image, digest_of, make_image, push_image
from tests.support.receiver import Receiver, endpoint_config, running_receiver
from tests.support.server import (
    FILESYSTEM,
    RunningRegistry,
    Storage,
    deep_merge,
    free_port,
    run_registry,
)
from tests.support.users import htpasswd_with_alice

ADMIN = {"http": {"admin": {"enabled": True}}}
EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"


def pushed(repository: str, tag: str, image: Image) -> list[tuple[str, str, str, str | None]]:
    """The events a push_image of `image` makes, as (action, repository, digest, tag)."""
    blobs = [("push", repository, digest_of(blob), None)
             for blob in (image.config, *image.layers)]
    return [*blobs, ("push", repository, image.digest, tag)]


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str | None]]:
    return [(event["action"], event["target"]["repository"], event["target"].get("digest", ""),
             event["target"].get("tag")) for event in events]


def stopped_receiver() -> Receiver:
    """A receiver whose port is known but refuses connections until started."""
    return Receiver()


def notifications(receiver: Receiver, **extra: Any) -> dict[str, Any]:
    return deep_merge(ADMIN, endpoint_config(receiver, **extra))


def admin_report(registry: RunningRegistry) -> dict[str, Any]:
    response = httpx.get(f"{registry.url}/admin/notifications", timeout=10)
    assert response.status_code == 200, response.text
    endpoints: list[dict[str, Any]] = response.json()["endpoints"]
    return {entry["name"]: entry for entry in endpoints}


def wait_for_report(registry: RunningRegistry, check: Any, timeout: float = 20
                    ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        report = admin_report(registry)
        if check(report):
            return report
        if time.monotonic() > deadline:
            raise AssertionError(f"the report never matched: {report}")
        time.sleep(0.1)


def test_events_have_distributions_envelope_and_name_the_request(tmp_path: Path) -> None:
    with running_receiver() as receiver, run_registry(
            tmp_path, config=deep_merge(endpoint_config(receiver),
                                        {"auth": {"htpasswd": {
                                            "realm": "r",
                                            "path": str(htpasswd_with_alice(tmp_path))}}})
    ) as registry:
        image = make_image(1)
        with registry.client(auth=("alice", "wonderland"),
                             headers={"User-Agent": "webhook-test/1.0"}) as client:
            push_image(client, "team/app", "v1", image)
            response = client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
            assert response.status_code == 200
            request_id = response.headers["X-Request-Id"]
        events = receiver.wait_for(lambda got: len(got) == 4)
        delivery = receiver.deliveries[-1]
        logs = registry.logs()

    assert delivery.headers["content-type"] == EVENTS_MEDIA_TYPE
    assert len(delivery.events) == 1  # one event an envelope, as distribution sends them
    assert summary(events) == [*pushed("team/app", "v1", image),
                               ("pull", "team/app", image.digest, "v1")]
    pull = events[-1]
    manifest = json.loads(image.manifest)
    assert set(pull) == {"id", "timestamp", "action", "target", "request", "actor", "source"}
    assert pull["target"] == {
        "mediaType": OCI_MANIFEST, "size": len(image.manifest), "digest": image.digest,
        "length": len(image.manifest), "repository": "team/app",
        "url": f"{registry.url}/v2/team/app/manifests/{image.digest}", "tag": "v1",
        "references": [manifest["config"], *manifest["layers"]],
    }
    # The request's id is the one the client got back and the access log wrote.
    assert pull["request"]["id"] == request_id
    assert f"http.request.id={request_id}" in logs
    assert pull["request"]["method"] == "GET"
    assert pull["request"]["useragent"] == "webhook-test/1.0"
    assert pull["request"]["host"] == registry.host
    assert re.fullmatch(r"127\.0\.0\.1:\d+", pull["request"]["addr"])
    assert pull["actor"] == {"name": "alice"}
    assert pull["source"]["addr"].endswith(f":{registry.host.rsplit(':', 1)[1]}")
    assert re.fullmatch(r"[0-9a-f-]{36}", pull["source"]["instanceID"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", pull["timestamp"])
    assert len({event["id"] for event in events}) == len(events)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_receiver_down_for_a_while_gets_every_event_once_in_order(
        tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    """Two worker processes (or, on PostgreSQL, two instances) write events while the
    receiver is down; once it is back it has each of them exactly once, in order."""
    receiver = stopped_receiver()
    storage = FILESYSTEM if backend == "sqlite" else Storage(
        "filesystem", postgres=request.getfixturevalue("postgres_server"))
    config = deep_merge(notifications(receiver), {"http": {"workers": 2}})
    expected: list[tuple[str, str, str, str | None]] = []
    with run_registry(tmp_path, config=config, storage=storage) as first, \
            run_registry(tmp_path, config=config, storage=storage, root=first.root) as second:
        for number in range(6):
            image = make_image(2)
            target = first if number % 2 == 0 else second
            with target.client() as client:
                push_image(client, f"app{number % 3}", f"v{number}", image)
            expected += pushed(f"app{number % 3}", f"v{number}", image)
        # Down: the events wait in the index, and the report says so.
        report = wait_for_report(first, lambda r: r["receiver"]["failures"] >= 1)
        assert report["receiver"]["pending"] == len(expected)
        assert report["receiver"]["sent"] == 0
        assert report["receiver"]["lastError"]
        time.sleep(1.5)  # a few rounds of retries and backoff
        receiver.start()
        try:
            events = receiver.wait_for(lambda got: len(got) >= len(expected))
            time.sleep(1)  # nothing more may come
            events = receiver.events()
            report = wait_for_report(second, lambda r: r["receiver"]["pending"] == 0)
        finally:
            receiver.stop()
    assert summary(events) == expected
    assert len({event["id"] for event in events}) == len(events)
    assert report["receiver"]["sent"] == len(expected)
    assert report["receiver"]["failures"] == 0


def kill_server(registry: RunningRegistry) -> None:
    """SIGKILL the server; its workers die with it (they ask Linux to)."""
    os.kill(registry.process.pid, signal.SIGKILL)
    registry.process.wait()
    time.sleep(0.5)


def test_events_pending_when_the_server_is_killed_are_delivered_after_restart(
        tmp_path: Path) -> None:
    receiver = stopped_receiver()
    config = notifications(receiver)
    image = make_image(2)
    with run_registry(tmp_path, config=config) as registry:
        with registry.client() as client:
            push_image(client, "app", "v1", image)
            assert client.delete("/v2/app/manifests/v1").status_code == 202
        wait_for_report(registry, lambda r: r["receiver"]["failures"] >= 1)
        kill_server(registry)
    receiver.start()
    try:
        with run_registry(tmp_path, config=config, root=registry.root):
            events = receiver.wait_for(lambda got: len(got) >= 5)
            time.sleep(1)
            events = receiver.events()
    finally:
        receiver.stop()
    assert summary(events) == [*pushed("app", "v1", image), ("delete", "app", "", "v1")]


def test_an_endpoint_gets_what_it_does_not_ignore_with_its_headers(tmp_path: Path) -> None:
    with running_receiver() as everything, running_receiver() as manifests_only, \
            running_receiver() as disabled:
        endpoints = [
            {"name": "everything", "url": everything.url,
             "headers": {"Authorization": ["Bearer s3cret"], "X-Team": ["a", "b"]}},
            # distribution's two spellings of the media types to ignore.
            {"name": "manifests", "url": manifests_only.url,
             "ignoredmediatypes": ["application/octet-stream"],
             "ignore": {"actions": ["pull"], "mediatypes": [OCI_INDEX]}},
            {"name": "off", "url": disabled.url, "disabled": True},
        ]
        config = deep_merge(ADMIN, {"notifications": {"endpoints": endpoints}})
        with run_registry(tmp_path, config=config) as registry:
            image = make_image(1)
            with registry.client() as client:
                push_image(client, "app", "v1", image)
                client.get("/v2/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
                client.get(f"/v2/app/blobs/{digest_of(image.layers[0])}")
            everything.wait_for(lambda got: len(got) == 5)
            manifests_only.wait_for(lambda got: len(got) == 1)
            time.sleep(1)
            report = admin_report(registry)
    assert summary(manifests_only.events()) == [("push", "app", image.digest, "v1")]
    assert [e["action"] for e in everything.events()] == ["push"] * 3 + ["pull"] * 2
    headers = everything.deliveries[0].headers
    assert headers["authorization"] == "Bearer s3cret"
    assert headers["x-team"] == "a, b"  # each value a header line of its own
    assert disabled.deliveries == []
    assert set(report) == {"everything", "manifests"}
    assert report["manifests"]["sent"] == 1 and report["everything"]["sent"] == 5


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True,
                          text=True, timeout=60)


def test_the_cli_reports_delivery_while_an_endpoint_is_down(tmp_path: Path) -> None:
    receiver = stopped_receiver()
    with run_registry(tmp_path, config=notifications(receiver)) as registry:
        with registry.client() as client:
            push_image(client, "app", "v1", make_image(1))
        wait_for_report(registry, lambda r: r["receiver"]["failures"] >= 1)
        down = run_cli("notifications", "--json", str(registry.config_path))
        table = run_cli("notifications", str(registry.config_path))
        receiver.start()
        try:
            wait_for_report(registry, lambda r: r["receiver"]["pending"] == 0)
            up = run_cli("notifications", "--json", str(registry.config_path))
        finally:
            receiver.stop()
    assert down.returncode == 1, down.stderr
    entry = json.loads(down.stdout)["endpoints"][0]
    assert entry["name"] == "receiver" and entry["pending"] == 3 and entry["failures"] >= 1
    assert entry["url"] == receiver.url
    assert "Connect" in entry["lastError"] or "connect" in entry["lastError"]
    assert entry["oldestPending"]
    assert "receiver" in table.stdout and "PENDING" in table.stdout
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["endpoints"][0]["sent"] == 3


@pytest.mark.parametrize("endpoint,key", [
    ({"url": "http://127.0.0.1:1/e"}, "notifications.endpoints[0].name"),
    ({"name": "a", "url": "ftp://example.com/"}, "notifications.endpoints[0].url"),
    ({"name": "a", "url": "http://x/", "ignore": {"actions": ["pul"]}},
     "notifications.endpoints[0].ignore.actions"),
    ({"name": "a", "url": "http://x/", "timeout": "soon"},
     "notifications.endpoints[0].timeout"),
    ({"name": "a", "url": "http://x/", "headers": {"A": 5}},
     "notifications.endpoints[0].headers.A"),
    ({"name": "a", "url": "http://x/", "treshold": 3}, "notifications.endpoints[0].treshold"),
])
def test_a_bad_endpoint_stops_the_server_naming_the_key(
        tmp_path: Path, endpoint: dict[str, Any], key: str) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1, "storage": {"filesystem": {"rootdirectory": str(tmp_path / "s")}},
        "notifications": {"endpoints": [endpoint]}}))
    result = run_cli("serve", str(config))
    assert result.returncode == 2, result.stderr
    assert key in result.stderr, result.stderr



def test_maxevents_sends_what_waits_in_fuller_envelopes(tmp_path: Path) -> None:
    receiver = stopped_receiver()
    with run_registry(tmp_path, config=notifications(receiver, maxevents=5)) as registry:
        expected = []
        for number in range(2):
            image = make_image(2)
            with registry.client() as client:
                push_image(client, "app", f"v{number}", image)
            expected += pushed("app", f"v{number}", image)
        wait_for_report(registry, lambda r: r["receiver"]["failures"] >= 1)
        receiver.start()
        try:
            events = receiver.wait_for(lambda got: len(got) >= len(expected))
        finally:
            receiver.stop()
    assert summary(events) == expected
    sizes = [len(delivery.events) for delivery in receiver.deliveries]
    assert max(sizes) <= 5 and len(sizes) < len(expected), sizes


def test_the_backlog_is_a_metric(tmp_path: Path) -> None:
    from tests.api.test_metrics import key, wait_for

    receiver = stopped_receiver()
    debug_port = free_port()
    config = deep_merge(notifications(receiver), {"http": {"workers": 2, "debug": {
        "addr": f"127.0.0.1:{debug_port}", "prometheus": {"enabled": True}}}})
    metrics = f"http://127.0.0.1:{debug_port}/metrics"
    backlog = key("dockyard_webhook_backlog", endpoint="receiver")
    with run_registry(tmp_path, config=config) as registry:
        with registry.client() as client:
            push_image(client, "app", "v1", make_image(1))
        waiting = wait_for(metrics, lambda samples: samples.get(backlog) == 3)
        receiver.start()
        try:
            receiver.wait_for(lambda got: len(got) == 3)
            drained = wait_for(metrics, lambda samples: samples.get(backlog) == 0)
        finally:
            receiver.stop()
    assert waiting[backlog] == 3
    assert drained[backlog] == 0
