"""Clients reaching the registry through nginx, as registry:2 deployments usually do.

nginx is set up the way the registry's documentation recommends (``Host`` passed on,
``X-Forwarded-Proto`` set, no body size limit, no request buffering): once over plain HTTP,
and once terminating TLS in front of a plain-HTTP registry, where every ``Location`` the
registry hands out must point back at nginx's HTTPS address.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

from tests.clients.conftest import KIND
from tests.support.clients import RegistryReader, Skopeo, run_binary
from tests.support.images import build_index, read_oci_layout, sample_image, write_image_layout
from tests.support.server import RunningRegistry, free_port, require_tool, run_registry

pytestmark = pytest.mark.clients


@dataclass
class Proxy:
    host: str
    url: str
    cert_dir: Path | None


NGINX_CONF = """
worker_processes 1;
error_log {work}/error.log warn;
pid {work}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log {work}/access.log;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen 127.0.0.1:{port}{ssl};
        {tls}
        client_max_body_size 0;
        chunked_transfer_encoding on;
        location /v2/ {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 900;
        }}
    }}
}}
"""


@contextmanager
def run_nginx(tmp: Path, upstream: str, tls: bool) -> Iterator[Proxy]:
    nginx = require_tool("nginx")
    work = Path(tempfile.mkdtemp(prefix="dy-nginx-"))
    port = free_port()
    tls_lines = ""
    cert_dir: Path | None = None
    if tls:
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1", "localhost")
        issued.private_key_and_cert_chain_pem.write_to_path(str(work / "server.pem"))
        cert_dir = tmp / "certs"
        cert_dir.mkdir()
        ca.cert_pem.write_to_path(str(cert_dir / "ca.crt"))
        tls_lines = f"ssl_certificate {work}/server.pem; ssl_certificate_key {work}/server.pem;"
    config = work / "nginx.conf"
    config.write_text(
        NGINX_CONF.format(
            work=work, port=port, ssl=" ssl" if tls else "", tls=tls_lines, upstream=upstream
        )
    )
    process = subprocess.Popen(
        [nginx, "-p", str(work), "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "nginx.stderr").open("wb"),
        stdin=subprocess.DEVNULL,
    )
    scheme = "https" if tls else "http"
    proxy = Proxy(f"127.0.0.1:{port}", f"{scheme}://127.0.0.1:{port}", cert_dir)
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    "nginx exited:\n" + (tmp / "nginx.stderr").read_text(errors="replace")
                )
            try:
                httpx.get(f"{proxy.url}/v2/", verify=False, timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield proxy
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with run_registry(tmp_path_factory.mktemp("proxied-registry"), kind=KIND) as running:
        yield running


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_skopeo_through_nginx(
    tmp_path: Path, backend: RunningRegistry, tls: bool, skopeo: Skopeo
) -> None:
    with run_nginx(tmp_path, backend.host, tls) as proxy:
        repo = f"proxied/skopeo-{'https' if tls else 'http'}"
        index = build_index(
            [sample_image("nginx", "amd64", layers=2), sample_image("nginx", "arm64", layers=1)]
        )
        layout = write_image_layout(tmp_path / "src", "v1", index)
        remote = f"docker://{proxy.host}/{repo}"
        if proxy.cert_dir is None:
            tls_push = ["--dest-tls-verify=false"]
            tls_pull = ["--src-tls-verify=false"]
            tls_read = ["--tls-verify=false"]
        else:
            tls_push = ["--dest-cert-dir", str(proxy.cert_dir)]
            tls_pull = ["--src-cert-dir", str(proxy.cert_dir)]
            tls_read = ["--cert-dir", str(proxy.cert_dir)]

        skopeo("copy", "--quiet", "--all", *tls_push, layout.ref("v1"), f"{remote}:v1")
        raw = run_binary(
            [skopeo.binary, "--policy", str(skopeo.policy), "inspect", "--raw", *tls_read,
             f"{remote}:v1"]
        )  # fmt: skip
        assert raw == index.index.data
        skopeo("copy", "--quiet", "--all", *tls_pull, f"{remote}:v1", f"oci:{tmp_path / 'back'}:v1")
        back = read_oci_layout(tmp_path / "back")
        for blob in [index.index, *index.blobs]:
            assert back.read_blob(blob.digest) == blob.data

        # Uploads started through nginx point back at nginx, with nginx's scheme.
        started = httpx.post(f"{proxy.url}/v2/{repo}/blobs/uploads/", verify=False, timeout=30)
        assert started.status_code == 202
        location = started.headers["location"]
        assert location.startswith(f"{proxy.url}/v2/{repo}/blobs/uploads/") or (
            location.startswith(f"/v2/{repo}/blobs/uploads/")
        ), location

    # The registry itself holds it all.
    with RegistryReader(backend.url) as reader:
        assert reader.manifest(repo, "v1").data == index.index.data
