"""A registry whose PostgreSQL index goes away answers 503 UNAVAILABLE (the spec's error
body, a Retry-After), never a 500, and serves again by itself when the database is back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.oci import digest_of, make_image, push_image
from tests.support.postgres import PostgresServer, require_psycopg, run_postgres
from tests.support.server import run_registry


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: it is stopped and started again."""
    require_psycopg()
    with run_postgres() as server:
        yield server


def test_requests_get_503_while_the_database_is_down_and_work_again_after(
        tmp_path: Path, own_postgres: PostgresServer) -> None:
    database = {"enabled": True, "dsn": own_postgres.index_database("outage")}
    with run_registry(tmp_path, config={"database": database}) as running, \
            running.client() as client:
        image = make_image()
        push_image(client, "team/app", "v1", image)
        own_postgres.stop()
        try:
            for method, path in [("GET", "/v2/_catalog"), ("GET", "/v2/team/app/tags/list"),
                                 ("DELETE", "/v2/team/app/manifests/v1")]:
                response = client.request(method, path)
                assert response.status_code == 503, (path, response.text)
                error = response.json()["errors"][0]
                assert error["code"] == "UNAVAILABLE"
                assert error["message"] == "the registry's index database is unavailable"
                assert response.headers["Retry-After"] == "10"
            # Blob reads need no index: they are still served.
            digest = digest_of(image.layers[0])
            assert client.get(f"/v2/team/app/blobs/{digest}").status_code == 200
        finally:
            own_postgres.start()
        assert client.get("/v2/_catalog").json()["repositories"] == ["team/app"]
        push_image(client, "team/app", "v2", make_image())
        assert client.get("/v2/team/app/tags/list").json()["tags"] == ["v1", "v2"]
    assert "index database postgresql://" in running.logs()
    assert "Traceback" not in running.logs()
