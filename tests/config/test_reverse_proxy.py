"""dockyard behind nginx, as registry:2 is usually deployed: skopeo pushes through the proxy."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.clients import Skopeo
from tests.support.images import sample_image, write_image_layout
from tests.support.server import RunningRegistry, free_port, require_tool, run_registry

NGINX_CONFIG = """
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        server_name registry.local;
        client_max_body_size 0;
        chunked_transfer_encoding on;
        location /v2/ {{
            proxy_pass http://{upstream};
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 900;
        }}
    }}
}}
"""


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[RunningRegistry, str]]:
    nginx = require_tool("nginx")
    with run_registry(tmp_path) as running:
        port = free_port()
        config = tmp_path / "nginx.conf"
        config.write_text(NGINX_CONFIG.format(tmp=tmp_path, port=port, upstream=running.host))
        process = subprocess.Popen([nginx, "-c", str(config), "-e", str(tmp_path / "err.log")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
                    break
                except httpx.TransportError:
                    assert process.poll() is None and time.monotonic() < deadline, \
                        (tmp_path / "err.log").read_text() if (tmp_path / "err.log").exists() \
                        else "nginx did not start"
                    time.sleep(0.1)
            yield running, f"127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_push_and_pull_through_nginx(proxied: tuple[RunningRegistry, str], tmp_path: Path
                                     ) -> None:
    running, proxy = proxied
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    image = sample_image("proxied", layers=3)
    source = tmp_path / "source"
    write_image_layout(source, "v1", image)
    skopeo.copy(f"oci:{source}:v1", f"docker://{proxy}/seeds/behind-nginx:v1")
    # Upload Locations named the proxy, not the registry's own address.
    with httpx.Client(base_url=f"http://{proxy}") as client:
        started = client.post("/v2/seeds/behind-nginx/blobs/uploads/")
        assert started.headers["Location"].startswith(f"http://{proxy}/v2/seeds/behind-nginx/")
        assert client.get("/v2/seeds/behind-nginx/tags/list").json()["tags"] == ["v1"]
    pulled = tmp_path / "pulled"
    skopeo.copy(f"docker://{proxy}/seeds/behind-nginx:v1", f"oci:{pulled}:v1")
    index = json.loads((pulled / "index.json").read_text())
    source_index = json.loads((source / "index.json").read_text())
    assert index["manifests"][0]["digest"] == source_index["manifests"][0]["digest"]
    assert running.process.poll() is None
