"""nginx as a reverse proxy in front of a registry, configured the way the registry's
documentation recommends (``Host`` passed on, ``X-Forwarded-For`` and ``X-Forwarded-Proto``
set, no body size limit, no request buffering), over plain HTTP or terminating TLS."""

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
import trustme

from tests.support.server import free_port, require_tool


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
