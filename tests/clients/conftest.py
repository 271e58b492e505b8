"""Fixtures for the real-client tests.

The registry under test is dockyard.  Setting ``DOCKYARD_CLIENTS_KIND=distribution`` runs the
very same tests against Debian's distribution 2.8.2 instead, which is how these tests are
checked against the reference implementation.
"""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme

from tests.support.clients import RegistryReader, Skopeo
from tests.support.server import RunningRegistry, require_tool, run_registry

KIND = os.environ.get("DOCKYARD_CLIENTS_KIND", "dockyard")
_LOG_KEY = pytest.StashKey[RunningRegistry]()


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    """The registry the clients talk to, shared by the whole session."""
    with run_registry(tmp_path_factory.mktemp("clients-registry"), kind=KIND) as running:
        yield running


@dataclass
class TlsRegistry:
    running: RunningRegistry
    ca_file: Path
    cert_dir: Path
    """A directory with the CA as ``ca.crt``, as skopeo's and podman's ``--cert-dir`` expect."""


@pytest.fixture(scope="session")
def tls_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsRegistry]:
    """A second registry serving HTTPS with a certificate from a CA made for the session."""
    tmp = tmp_path_factory.mktemp("clients-tls-registry")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    for number, pem in enumerate(issued.cert_chain_pems):
        pem.write_to_path(str(cert_path), append=number > 0)
    issued.private_key_pem.write_to_path(str(key_path))
    cert_dir = tmp / "certs"
    cert_dir.mkdir()
    ca.cert_pem.write_to_path(str(cert_dir / "ca.crt"))
    config = {"http": {"tls": {"certificate": str(cert_path), "key": str(key_path)}}}
    with run_registry(tmp, kind=KIND, config=config, scheme="https") as running:
        yield TlsRegistry(running, cert_dir / "ca.crt", cert_dir)


@pytest.fixture
def reader(target: RunningRegistry, request: pytest.FixtureRequest) -> Iterator[RegistryReader]:
    request.node.stash[_LOG_KEY] = target
    with RegistryReader(target.url) as registry_reader:
        yield registry_reader


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository name of this test's own, e.g. ``clients/test-push-pull``."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return f"clients/{name[:80]}"


@pytest.fixture
def skopeo(tmp_path: Path) -> Skopeo:
    return Skopeo(require_tool("skopeo"), tmp_path / "skopeo")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On failure, attach the end of the registry's log to the report."""
    report = yield
    running = item.stash.get(_LOG_KEY, None)
    if report.failed and running is not None:
        lines = running.logs().splitlines()[-40:]
        report.sections.append((f"{running.kind} log (last 40 lines)", "\n".join(lines)))
    return report
