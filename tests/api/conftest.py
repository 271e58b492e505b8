"""The HTTP API suite runs on every storage: a filesystem, and S3 (the first endpoint of the
S3 fixtures: radosgw, or the external S3 the DOCKYARD_TEST_S3_* variables name).

Every test that starts a registry asks for `storage` (directly, or through `registry`,
`fresh_registry`, `client`...) and so runs once per storage, its id naming it
(`[filesystem]`, `[s3]`). On `s3` the blob redirect is off, so that the registry itself
answers blob GETs (ranges, conditions, errors) from S3 as the tests expect of it; they run
again as `[s3-postgres]`, on S3 with the index in PostgreSQL (the deployment of several
registries over one bucket; tests/support/postgres.py starts the server). Tests
marked `blob_redirect` run once more, as `[s3-redirect]`, with the redirect on and their
clients following it. Tests about the filesystem itself (permissions, symlinks, a full
disk) and those in which the storage plays no part carry
`@pytest.mark.filesystem_only(reason)` and run on the filesystem alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.s3 import S3_BACKENDS, S3Bucket, bucket_on, service_of
from tests.support.server import FILESYSTEM, RunningRegistry, Storage, run_registry

STORAGE_KINDS = ("filesystem", "s3", "s3-postgres", "s3-redirect")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "filesystem_only(reason): about the filesystem store itself; not run on S3")
    config.addinivalue_line(
        "markers", "blob_redirect: reads blob bytes only; also run on S3 with blob GETs "
        "redirected to the bucket")


def storage_kinds(test: pytest.Function) -> list[str]:
    """The storages a test runs on, from its markers."""
    only = test.get_closest_marker("filesystem_only")
    if only is not None:
        if not (only.args or only.kwargs.get("reason")):
            raise pytest.UsageError(f"{test.nodeid}: filesystem_only needs a reason")
        return ["filesystem"]
    if test.get_closest_marker("blob_redirect") is not None:
        return list(STORAGE_KINDS)
    return ["filesystem", "s3", "s3-postgres"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "storage" in metafunc.fixturenames:
        kinds = storage_kinds(metafunc.definition)
        metafunc.parametrize("storage", kinds, ids=kinds, indirect=True, scope="session")


@pytest.fixture(scope="session")
def api_s3_bucket(request: pytest.FixtureRequest) -> Iterator[S3Bucket]:
    """One bucket (or key prefix) for every S3 registry of the session; each registry keeps
    its store under a prefix of its own there."""
    with bucket_on(service_of(request, S3_BACKENDS[0])) as bucket:
        yield bucket


@pytest.fixture(scope="session")
def storage(request: pytest.FixtureRequest) -> Storage:
    kind = getattr(request, "param", "filesystem")
    if kind == "filesystem":
        return FILESYSTEM
    bucket: S3Bucket = request.getfixturevalue("api_s3_bucket")
    if kind == "s3-postgres":
        return Storage("s3", bucket, postgres=request.getfixturevalue("postgres_server"))
    return Storage("s3", bucket, redirect=kind == "s3-redirect")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory, storage: Storage
             ) -> Iterator[RunningRegistry]:
    """One dockyard per storage shared by a whole test session (deletes enabled)."""
    with run_registry(tmp_path_factory.mktemp(f"registry-{storage.id}"),
                      storage=storage) as running:
        yield running


@pytest.fixture
def fresh_registry(tmp_path: Path, storage: Storage) -> Iterator[RunningRegistry]:
    """A dockyard of its own, for tests that need an empty store."""
    with run_registry(tmp_path, storage=storage) as running:
        yield running
