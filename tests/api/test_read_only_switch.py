"""Read-only maintenance mode switched live (POST /admin/readonly): every worker refuses
writes from the next request on, with distribution's 405 UNSUPPORTED, while reads, /v2/ and
the health check keep answering; switched back, writes work at once; the switch outlives
restarts until switched back to what the configuration says."""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci import digest_of, error_codes, make_image, push_blob, push_image
from tests.support.postgres import PostgresServer
from tests.support.server import RunningRegistry, Storage, deep_merge, run_registry

WORKERS = 3
ADMIN = {"http": {"admin": {"enabled": True}, "workers": WORKERS}}
READ_ONLY_CONFIG = {"storage": {"maintenance": {"readonly": {"enabled": True}}}}
ROUNDS = 24  # requests of each kind, each on a new connection: every worker gets some


def fresh_connections(running: RunningRegistry) -> httpx.Client:
    """A client opening a new connection for each request, so requests land on any worker."""
    return httpx.Client(base_url=running.url, timeout=60,
                        limits=httpx.Limits(max_keepalive_connections=0))


def switch(client: httpx.Client, enabled: bool) -> dict[str, Any]:
    response = client.post("/admin/readonly", params={"enabled": str(enabled).lower()})
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    assert state["enabled"] is enabled
    return state


def assert_read_only_refusal(response: httpx.Response) -> None:
    assert response.status_code == 405, (response.request.method, response.request.url,
                                         response.text)
    assert error_codes(response) == ["UNSUPPORTED"]
    assert "read-only" in response.json()["errors"][0]["message"]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    with run_registry(tmp_path, config=deep_merge(ADMIN, {"ui": {"enabled": True}})) as running:
        yield running


def test_switch_reaches_every_worker_at_once(registry: RunningRegistry) -> None:
    image = make_image()
    with fresh_connections(registry) as client:
        push_image(client, "live/repo", "v1", image)
        state = switch(client, True)
        assert state["source"] == "live" and state["configured"] is False
        assert state["switched"]["enabled"] is True and state["switched"]["by"] is None
        other = make_image()
        for _ in range(ROUNDS):
            assert_read_only_refusal(client.post("/v2/live/repo/blobs/uploads/"))
            assert_read_only_refusal(client.post(
                "/v2/live/repo/blobs/uploads/", params={"digest": digest_of(other.config)},
                content=other.config))
            assert_read_only_refusal(client.put(
                "/v2/live/repo/manifests/v2", content=image.manifest,
                headers={"Content-Type": image.media_type}))
            assert_read_only_refusal(client.delete(f"/v2/live/repo/manifests/{image.digest}"))
            assert_read_only_refusal(client.delete(
                f"/v2/live/repo/blobs/{digest_of(image.layers[0])}"))
            assert client.get("/v2/").status_code == 200
            assert client.get("/v2/live/repo/manifests/v1").content == image.manifest
            assert client.get(f"/v2/live/repo/blobs/{digest_of(image.config)}"
                              ).content == image.config
            assert client.get("/v2/_catalog").json() == {"repositories": ["live/repo"]}
            assert client.get("/v2/live/repo/tags/list").json()["tags"] == ["v1"]
            assert client.get("/debug/health").status_code == 200
            assert client.get("/admin/readonly").json()["enabled"] is True
        # Collections only as dry runs; the web UI offers no real one.
        assert_read_only_refusal(client.post("/admin/gc", params={"graceperiod": "0"}))
        assert client.post("/admin/gc", params={"dryrun": "true"}).status_code == 202
        assert "read-only maintenance mode" in client.get("/ui/storage").text
        assert "Collect garbage now" not in client.get("/ui/storage").text

        state = switch(client, False)
        assert state["source"] == "config" and state["switched"]["enabled"] is False
        for n in range(ROUNDS):
            push_image(client, "live/repo", f"after-{n}", make_image(layer_count=1))
        assert client.delete(f"/v2/live/repo/manifests/{image.digest}").status_code == 202
        assert "Collect garbage now" in client.get("/ui/storage").text
    logs = registry.logs()
    assert "read-only maintenance mode switched on" in logs
    assert "read-only maintenance mode switched off" in logs


def test_uploads_in_progress_wait_while_read_only(registry: RunningRegistry) -> None:
    """As distribution: an upload's chunks, its commit and its cancel are writes too. The
    session stays, and continues once writes are back on."""
    data = b"0123456789" * 1000
    with fresh_connections(registry) as client:
        started = client.post("/v2/pending/repo/blobs/uploads/")
        assert started.status_code == 202
        location = started.headers["Location"]
        first = client.patch(location, content=data[:4000],
                             headers={"Content-Range": "0-3999"})
        assert first.status_code == 202, first.text
        switch(client, True)
        for _ in range(ROUNDS // 4):
            assert_read_only_refusal(client.patch(
                location, content=data[4000:], headers={"Content-Range": f"4000-{len(data) - 1}"}))
            assert_read_only_refusal(client.put(location, params={"digest": digest_of(data)}))
            assert_read_only_refusal(client.delete(location))
            status = client.get(location)
            assert status.status_code == 204 and status.headers["Range"] == "0-3999"
        switch(client, False)
        rest = client.patch(location, content=data[4000:],
                            headers={"Content-Range": f"4000-{len(data) - 1}"})
        assert rest.status_code == 202, rest.text
        done = client.put(rest.headers["Location"], params={"digest": digest_of(data)})
        assert done.status_code == 201, done.text
        assert client.get(f"/v2/pending/repo/blobs/{digest_of(data)}").content == data


def test_state_report_and_bad_values(registry: RunningRegistry) -> None:
    with registry.client() as client:
        assert client.get("/admin/readonly").json() == {
            "enabled": False, "source": "config", "configured": False, "switched": None}
        for params, body in (({"enabled": "maybe"}, None), ({"enabled": ""}, None),
                             ({}, None), ({}, b"enabled=true"), ({}, b'{"enabled": "yes"}'),
                             ({}, b"[true]"), ({}, b'{"on": true}')):
            bad = client.post("/admin/readonly", params=params, content=body)
            assert bad.status_code == 400, (params, body, bad.text)
            assert error_codes(bad) == ["INVALID_PARAMETER"]
        assert client.get("/admin/readonly").json()["switched"] is None
        # A JSON body does as well as the query; yes/no, on/off and 1/0 too.
        on = client.post("/admin/readonly", json={"enabled": True})
        assert on.status_code == 200 and on.json()["enabled"] is True
        switched_at = time.strptime(on.json()["switched"]["at"], "%Y-%m-%dT%H:%M:%SZ")
        assert abs(time.time() - calendar.timegm(switched_at)) < 120
        assert client.get("/admin/readonly").json() == on.json()
        assert switch(client, False)["enabled"] is False
        for text, enabled in (("on", True), ("no", False), ("1", True), ("OFF", False)):
            answer = client.post("/admin/readonly", params={"enabled": text})
            assert answer.json()["enabled"] is enabled, text
        assert client.put("/admin/readonly").status_code == 405


def test_a_live_switch_outlives_restarts_until_switched_back(tmp_path: Path) -> None:
    """Switched on for a migration, a restart does not re-open writes; switched back to what
    the configuration says, the configuration decides again (its later edits included)."""
    image = make_image()
    with run_registry(tmp_path, config=ADMIN) as running, running.client() as client:
        push_image(client, "kept/repo", "v1", image)
        switch(client, True)
    with run_registry(tmp_path, config=ADMIN) as running, running.client() as client:
        state = client.get("/admin/readonly").json()
        assert state["enabled"] is True and state["source"] == "live"
        assert_read_only_refusal(client.post("/v2/kept/repo/blobs/uploads/"))
        assert client.get("/v2/kept/repo/manifests/v1").status_code == 200
        switch(client, False)
    # The configuration now says read-only: the earlier switch back no longer counts.
    read_only = deep_merge(ADMIN, READ_ONLY_CONFIG)
    with run_registry(tmp_path, config=read_only) as running, running.client() as client:
        state = client.get("/admin/readonly").json()
        assert state == {**state, "enabled": True, "source": "config", "configured": True}
        assert_read_only_refusal(client.post("/v2/kept/repo/blobs/uploads/"))
        # Opened live against the configuration: that holds over a restart too.
        state = switch(client, False)
        assert state["source"] == "live"
        push_blob(client, "kept/repo", b"written while the configuration says read-only")
    with run_registry(tmp_path, config=read_only) as running, running.client() as client:
        assert client.get("/admin/readonly").json()["source"] == "live"
        push_image(client, "kept/repo", "v2", make_image())


def test_instances_sharing_a_postgres_index_see_each_others_switch(
        tmp_path: Path, postgres_server: PostgresServer) -> None:
    storage = Storage("filesystem", postgres=postgres_server)
    root = tmp_path / "store"
    config = deep_merge(ADMIN, {"http": {"workers": 2}})
    for n in range(2):
        (tmp_path / f"host-{n}").mkdir()
    with ExitStack() as stack:
        first, second = (stack.enter_context(run_registry(
            tmp_path / f"host-{n}", root=root, storage=storage, config=config))
            for n in range(2))
        one, two = (stack.enter_context(fresh_connections(each)) for each in (first, second))
        push_image(one, "shared/repo", "v1", make_image())
        switch(one, True)
        for _ in range(ROUNDS // 2):
            assert_read_only_refusal(two.post("/v2/shared/repo/blobs/uploads/"))
            assert two.get("/v2/shared/repo/manifests/v1").status_code == 200
        assert two.get("/admin/readonly").json()["source"] == "live"
        switch(two, False)
        for n in range(ROUNDS // 2):
            push_image(one, "shared/repo", f"v{n + 2}", make_image(layer_count=1))
