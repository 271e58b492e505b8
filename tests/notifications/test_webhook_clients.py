"""What skopeo and docker make dockyard send to a webhook is what distribution 2.8.2 sends
for the same operations: both registries run the same steps against one kind of receiver,
and each step's events are compared field by field (all but ids, times, and the ports that
differ between the two servers)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.clients import Skopeo
from tests.support.docker_cli import Docker, load_image, running_docker
from tests.support.images import OCI_MANIFEST, sample_image, write_image_layout
from tests.support.receiver import Receiver, endpoint_config, running_receiver
from tests.support.server import RunningRegistry, require_tool, run_registry

pytestmark = pytest.mark.clients


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    with running_docker(tmp_path_factory.mktemp("dockerd")) as client:
        yield client


def comparable(event: dict[str, Any]) -> str:
    """An event without what differs between two servers and two runs."""
    target = dict(event["target"])
    url = target.pop("url", None)
    if url is not None:
        target["url.path"] = urlsplit(url).path
    request = event["request"]
    return json.dumps({"action": event["action"], "target": target,
                       "method": request["method"], "useragent": request["useragent"],
                       "actor": event["actor"], "envelope": sorted(event)}, sort_keys=True)


def settled(receiver: Receiver, seen: int) -> list[dict[str, Any]]:
    """The events that came after the first `seen`, once no more arrive for a while."""
    last, quiet_since = -1, time.monotonic()
    while time.monotonic() - quiet_since < 1.5:
        count = len(receiver.events())
        if count != last:
            last, quiet_since = count, time.monotonic()
        time.sleep(0.1)
    return receiver.events()[seen:]


def run_steps(registry: RunningRegistry, receiver: Receiver, tmp: Path, skopeo: Skopeo,
              docker: Docker) -> dict[str, list[str]]:
    """Each step's events, comparable and sorted (within a step, two clients' parallel
    requests may land in either order)."""
    steps: dict[str, list[str]] = {}
    host = registry.host

    def step(name: str) -> None:
        events = settled(receiver, sum(len(found) for found in steps.values()))
        steps[name] = sorted(comparable(event) for event in events)

    image = sample_image("webhooks", layers=2)
    layout = write_image_layout(tmp / "layout", "v1", image)
    skopeo.copy(layout.ref("v1"), f"docker://{host}/sk/app:v1")
    step("skopeo push")
    skopeo.copy(f"docker://{host}/sk/app:v1", f"oci:{tmp / 'back'}:v1")
    step("skopeo pull")

    docker_image = sample_image("webhooks-docker", layers=2)
    load_image(docker, tmp, docker_image, "webhooks-local:v1")
    docker("tag", "webhooks-local:v1", f"{host}/dk/first:v1")
    digest = docker.push(f"{host}/dk/first:v1")
    step("docker push")
    docker("tag", "webhooks-local:v1", f"{host}/dk/second:v1")
    docker.push(f"{host}/dk/second:v1")
    step("docker push mounting from another repository")
    docker("rmi", f"{host}/dk/first:v1", f"{host}/dk/second:v1", "webhooks-local:v1")
    docker("pull", f"{host}/dk/second:v1")
    step("docker pull")
    docker("rmi", f"{host}/dk/second:v1")

    with httpx.Client(base_url=registry.url, timeout=30) as client:
        head = client.head("/v2/sk/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert head.status_code == 200
        response = client.delete(f"/v2/dk/first/manifests/{digest}")
        assert response.status_code == 202, response.text
    step("manifest deleted by digest")
    return steps


def test_skopeo_and_docker_make_the_events_distribution_sends(
        tmp_path: Path, docker: Docker) -> None:
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    seen: dict[str, dict[str, list[str]]] = {}
    for kind in ("distribution", "dockyard"):
        work = tmp_path / kind
        work.mkdir()
        with running_receiver() as receiver, run_registry(
                work, kind=kind, config=endpoint_config(receiver)) as registry:
            seen[kind] = run_steps(registry, receiver, work, skopeo, docker)
    distribution, dockyard = seen["distribution"], seen["dockyard"]
    assert list(dockyard) == list(distribution)
    for step, expected in distribution.items():
        assert expected, f"distribution sent nothing for {step}"
        assert dockyard[step] == expected, step
    actions = {json.loads(event)["action"] for events in dockyard.values() for event in events}
    assert actions == {"push", "pull", "mount", "delete"}
