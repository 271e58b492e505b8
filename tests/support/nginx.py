"""nginx as a reverse proxy in front of a registry, configured the way the registry's
documentation recommends (``Host`` passed on, ``X-Forwarded-For`` and ``X-Forwarded-Proto``
set, no body size limit, no request buffering), over plain HTTP or terminating TLS.

Given several upstreams, nginx spreads requests over them round-robin with no session
affinity, as a load balancer in front of several registries sharing one store does: the
requests of one push land on different registries."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
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
    access_log: Path  # one line per request: method, path, status, the upstream(s) tried

    def upstreams_used(self) -> list[str]:
        """The upstream address of each request answered so far, in order."""
        return [line.rsplit(" ", 1)[-1] for line in self.access_log.read_text().splitlines()]


NGINX_CONF = """
worker_processes 1;
error_log {logs}/nginx-error.log warn;
pid {work}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    log_format upstreams '$request_method $uri $status $upstream_addr';
    access_log {work}/access.log upstreams;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    upstream registries {{
        {servers}
    }}
    server {{
        listen 127.0.0.1:{port}{ssl};
        {tls}
        client_max_body_size 0;
        chunked_transfer_encoding on;
        location /v2/ {{
            proxy_pass http://registries;
            proxy_http_version 1.1;
            proxy_request_buffering off;
            proxy_set_header Host $http_host;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 900;
            # Large answers are passed on as they come, never spooled to a temporary file:
            # started as root, nginx's workers (nobody) could not write one in `work`.
            proxy_max_temp_file_size 0;
        }}
    }}
}}
"""


@contextmanager
def run_nginx(tmp: Path, upstream: str | Sequence[str], tls: bool) -> Iterator[Proxy]:
    """nginx in front of `upstream`: one registry's host:port, or several (round-robin)."""
    upstreams = [upstream] if isinstance(upstream, str) else list(upstream)
    servers = " ".join(f"server {host};" for host in upstreams)
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
            work=work, logs=tmp, port=port, ssl=" ssl" if tls else "", tls=tls_lines,
            servers=servers,
        )
    )
    process = subprocess.Popen(
        [nginx, "-p", str(work), "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "nginx.stderr").open("wb"),
        stdin=subprocess.DEVNULL,
    )
    scheme = "https" if tls else "http"
    proxy = Proxy(f"127.0.0.1:{port}", f"{scheme}://127.0.0.1:{port}", cert_dir,
                  work / "access.log")
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
