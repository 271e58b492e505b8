"""HTTPS from http.tls, upload purging, and streaming without holding bodies in memory."""

from __future__ import annotations

import ssl
import time
from pathlib import Path

import httpx
import pytest
import trustme

from tests.support.oci import digest_of
from tests.support.server import run_registry


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[trustme.CA, Path, Path]:
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert_path))
    for pem in issued.cert_chain_pems[1:]:
        pem.write_to_path(str(cert_path), append=True)
    issued.private_key_pem.write_to_path(str(key_path))
    return ca, cert_path, key_path


def test_tls(tmp_path: Path, certificate: tuple[trustme.CA, Path, Path]) -> None:
    ca, cert_path, key_path = certificate
    config = {"http": {"tls": {"certificate": str(cert_path), "key": str(key_path)}}}
    with run_registry(tmp_path, config=config, scheme="https") as running:
        context = ssl.create_default_context()
        ca.configure_trust(context)
        with httpx.Client(base_url=running.url, verify=context) as client:
            response = client.get("/v2/")
            assert response.status_code == 200
            assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
            started = client.post("/v2/tls/repo/blobs/uploads/")
            assert started.headers["Location"].startswith(f"{running.url}/v2/tls/repo/")
        # A client that does not trust the CA refuses the connection.
        with pytest.raises(httpx.ConnectError), httpx.Client(base_url=running.url) as client:
            client.get("/v2/")
        # Plain HTTP to the TLS port gets nothing useful.
        with pytest.raises(httpx.HTTPError):
            httpx.get(running.url.replace("https://", "http://") + "/v2/", timeout=5)


def test_abandoned_uploads_are_purged(tmp_path: Path) -> None:
    purging = {"storage": {"maintenance": {"uploadpurging": {
        "enabled": True, "age": "1s", "interval": "1s", "dryrun": False}}}}
    with run_registry(tmp_path, config=purging) as running, running.client() as client:
        location = client.post("/v2/purge/repo/blobs/uploads/").headers["Location"]
        client.patch(location, content=b"partial")
        deadline = time.monotonic() + 20
        while client.get(location).status_code == 204:
            assert time.monotonic() < deadline, "upload was never purged"
            time.sleep(0.5)
        assert client.get(location).status_code == 404
        uploads = running.root / "docker/registry/v2/repositories/purge/repo/_uploads"
        assert not any(uploads.iterdir())


def test_large_upload_is_streamed_not_buffered(tmp_path: Path) -> None:
    """A 512 MiB blob pushed in one request does not grow the server by its size."""
    size = 512 * 1024 * 1024
    block = bytes(range(256)) * 4096  # 1 MiB

    def body() -> object:
        for _ in range(size // len(block)):
            yield block

    import hashlib

    hasher = hashlib.sha256()
    for _ in range(size // len(block)):
        hasher.update(block)
    digest = f"sha256:{hasher.hexdigest()}"
    with run_registry(tmp_path) as running, running.client(timeout=300) as client:
        response = client.post("/v2/big/blob/blobs/uploads/", params={"digest": digest},
                               content=body())  # type: ignore[arg-type]
        assert response.status_code == 201, response.text
        peak_kib = peak_rss_kib(running.process.pid)
        assert peak_kib < 200 * 1024, f"server peak RSS {peak_kib} KiB"
        head = client.head(f"/v2/big/blob/blobs/{digest}")
        assert head.headers["Content-Length"] == str(size)
        received = hashlib.sha256()
        with client.stream("GET", f"/v2/big/blob/blobs/{digest}") as stream:
            for chunk in stream.iter_bytes():
                received.update(chunk)
        assert f"sha256:{received.hexdigest()}" == digest
        assert digest != digest_of(b"")


def peak_rss_kib(pid: int) -> int:
    """The largest peak RSS among the server and its worker processes."""
    peaks = []
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for process in [pid, *map(int, children)]:
        for line in Path(f"/proc/{process}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]))
    assert len(peaks) > 1, "expected worker processes"
    return max(peaks)


def test_uploads_in_progress_are_limited(tmp_path: Path) -> None:
    config = {"validation": {"uploads": {"maxinprogress": 3}}}
    with run_registry(tmp_path, config=config) as running, running.client() as client:
        locations = [client.post("/v2/limited/repo/blobs/uploads/").headers["Location"]
                     for _ in range(3)]
        refused = client.post("/v2/limited/repo/blobs/uploads/")
        assert refused.status_code == 429
        assert refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        # Other repositories have their own allowance; finishing one frees a place.
        assert client.post("/v2/limited/other/blobs/uploads/").status_code == 202
        assert client.delete(locations[0]).status_code == 204
        assert client.post("/v2/limited/repo/blobs/uploads/").status_code == 202


def test_mutual_tls(tmp_path: Path, certificate: tuple[trustme.CA, Path, Path]) -> None:
    ca, cert_path, key_path = certificate
    client_ca = trustme.CA()
    client_ca_path = tmp_path / "client-ca.pem"
    client_ca.cert_pem.write_to_path(str(client_ca_path))
    config = {"http": {"tls": {"certificate": str(cert_path), "key": str(key_path),
                               "clientcas": [str(client_ca_path)]}}}
    with run_registry(tmp_path, config=config, scheme="https") as running:
        trusted = ssl.create_default_context()
        ca.configure_trust(trusted)
        # Without a client certificate the handshake (or the first request) fails.
        with pytest.raises(httpx.HTTPError), httpx.Client(verify=trusted) as client:
            client.get(running.url + "/v2/")
        # A certificate from another CA is refused too.
        stranger = trustme.CA().issue_cert("stranger@example.com")
        wrong = ssl.create_default_context()
        ca.configure_trust(wrong)
        stranger.configure_cert(wrong)
        with pytest.raises(httpx.HTTPError), httpx.Client(verify=wrong) as client:
            client.get(running.url + "/v2/")
        # One the configured CA issued is let in.
        issued = client_ca.issue_cert("builder@example.com")
        good = ssl.create_default_context()
        ca.configure_trust(good)
        issued.configure_cert(good)
        with httpx.Client(verify=good) as client:
            assert client.get(running.url + "/v2/").status_code == 200


def test_tls_1_1_is_refused(tmp_path: Path, certificate: tuple[trustme.CA, Path, Path]) -> None:
    ca, cert_path, key_path = certificate
    config = {"http": {"tls": {"certificate": str(cert_path), "key": str(key_path)}}}
    with run_registry(tmp_path, config=config, scheme="https") as running:
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ca.configure_trust(old)
        old.maximum_version = ssl.TLSVersion.TLSv1_1
        old.minimum_version = ssl.TLSVersion.TLSv1
        with pytest.raises((httpx.HTTPError, ssl.SSLError)), httpx.Client(verify=old) as client:
            client.get(running.url + "/v2/")
        modern = ssl.create_default_context()
        ca.configure_trust(modern)
        modern.maximum_version = ssl.TLSVersion.TLSv1_2
        with httpx.Client(verify=modern) as client:
            assert client.get(running.url + "/v2/").status_code == 200
