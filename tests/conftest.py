from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import RunningRegistry, run_registry


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """One dockyard shared by a whole test session (deletes enabled)."""
    with run_registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A dockyard of its own, for tests that need an empty store."""
    with run_registry(tmp_path) as running:
        yield running


@pytest.fixture
def client(registry: RunningRegistry) -> Iterator[httpx.Client]:
    with registry.client() as http:
        yield http


@pytest.fixture
def registry_host(registry: RunningRegistry) -> str:
    return registry.host


@pytest.fixture
def registry_url(registry: RunningRegistry) -> str:
    return registry.url


# S3 endpoints (radosgw, moto, or an external S3) and a PostgreSQL server (private or
# external) for the tests that need one.
pytest_plugins = ["tests.support.s3", "tests.support.postgres"]
