"""The container image as registry:2's users run it: built from the repository's Dockerfile,
started with `docker run --network host` (no bridges here), driven with the guides' commands:
docker push, curl for catalog, tags, the digest and the delete, `docker exec ...
bin/registry garbage-collect`."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme
import yaml

from tests.support.clients import Skopeo
from tests.support.container_image import REPO, build_image
from tests.support.docker_cli import Docker, load_image, running_docker
from tests.support.images import (
    large_image,
    read_oci_layout,
    sample_image,
    write_image_layout,
)
from tests.support.oci import DOCKER_MANIFEST, digest_of, make_image, push_image
from tests.support.server import free_port, require_tool, run_registry

pytestmark = pytest.mark.clients

IMAGE = "dockyard:under-test"
CONFIG = "/etc/docker/registry/config.yml"
SERVICE_UID = 10001  # the image's dockyard user
LARGE_LAYER = 300 * 1024 * 1024


@pytest.fixture(scope="module")
def docker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Docker]:
    tmp = tmp_path_factory.mktemp("image-dockerd")
    with running_docker(tmp) as client:
        build_image([client.binary], client.daemon.env, IMAGE, tmp)
        yield client


@dataclass
class Container:
    docker: Docker
    name: str
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def exec(self, *command: str, check: bool = True) -> str:
        return self.docker("exec", self.name, *command, check=check)

    def main_process_uid(self) -> int:
        status = self.exec("cat", "/proc/1/status")
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        return int(uid_line.split()[1])

    def inspect(self, template: str) -> str:
        return self.docker("inspect", "--format", template, self.name).strip()

    def logs(self) -> str:
        result = subprocess.run([self.docker.binary, "logs", self.name], capture_output=True,
                                text=True, env={**os.environ, **self.docker.daemon.env})
        return result.stdout + result.stderr


class Containers:
    """Containers of the image under test, each serving on a port of its own (host network),
    removed with their volumes at the end of the test."""

    def __init__(self, docker: Docker) -> None:
        self.docker = docker
        self.names: list[str] = []

    def start(self, *options: str) -> Container:
        """A container, started: `docker run` returns as its entry point begins."""
        port = free_port()
        name = f"registry-{port}"
        self.docker("run", "--detach", "--network", "host", "--name", name,
                    "--env", f"REGISTRY_HTTP_ADDR=127.0.0.1:{port}", *options, IMAGE)
        self.names.append(name)
        return Container(self.docker, name, port)

    def run(self, *options: str) -> Container:
        """A container, once it serves."""
        container = self.start(*options)
        deadline = time.monotonic() + 60
        while True:
            try:
                # 401 too: a registry with auth serves /v2/ to those who log in.
                if httpx.get(f"{container.url}/v2/", timeout=2).status_code in (200, 401):
                    return container
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the container did not serve:\n{container.logs()}")
            time.sleep(0.1)

    def remove_all(self) -> None:
        for name in self.names:
            self.docker("rm", "--force", "--volumes", name, check=False)


@pytest.fixture
def containers(docker: Docker) -> Iterator[Containers]:
    made = Containers(docker)
    yield made
    made.remove_all()


def shell(command: str) -> str:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, check=True,
                          timeout=60).stdout


def owners(root: Path) -> set[int]:
    found = {root.stat().st_uid}
    for directory, names, files in os.walk(root):
        for name in [*names, *files]:
            found.add(os.lstat(os.path.join(directory, name)).st_uid)
    return found


def blob_files(root: Path) -> set[str]:
    blobs = root / "docker/registry/v2/blobs/sha256"
    return {f"sha256:{path.parent.name}" for path in blobs.glob("*/*/data")}


def test_the_guides_flow_against_the_container(tmp_path: Path, docker: Docker,
                                               containers: Containers) -> None:
    require_tool("curl")
    store = tmp_path / "registry"
    store.mkdir()  # as `-v /data/registry:/var/lib/registry` makes it: root's, empty
    registry = containers.run(
        "--env", "REGISTRY_STORAGE_DELETE_ENABLED=true",
        "--env", "REGISTRY_STORAGE_GC_GRACEPERIOD=0",
        "--volume", f"{store}:/var/lib/registry")
    # The fresh volume went to the service user, and the registry runs as that user.
    assert store.stat().st_uid == SERVICE_UID
    assert registry.main_process_uid() == SERVICE_UID

    image = sample_image("guides", layers=2)
    reference = f"127.0.0.1:{registry.port}/library/hello-world:latest"
    load_image(docker, tmp_path, image, reference)
    digest = docker.push(reference)

    assert json.loads(shell(f"curl -s {registry.url}/v2/_catalog")) == {
        "repositories": ["library/hello-world"]}
    assert json.loads(shell(f"curl -s {registry.url}/v2/library/hello-world/tags/list")) == {
        "name": "library/hello-world", "tags": ["latest"]}
    printed = shell(
        f'curl -v --silent -H "Accept: {DOCKER_MANIFEST}" -X GET '
        f"{registry.url}/v2/library/hello-world/manifests/latest 2>&1 "
        "| grep Docker-Content-Digest | awk '{print ($3)}'")
    assert printed.strip() == digest
    manifest = httpx.get(f"{registry.url}/v2/library/hello-world/manifests/{digest}",
                         headers={"Accept": DOCKER_MANIFEST}).json()
    image_blobs = {manifest["config"]["digest"]} | {
        layer["digest"] for layer in manifest["layers"]}
    assert image_blobs <= blob_files(store)

    status = shell(f'curl -s -o /dev/null -w "%{{http_code}}" -H "Accept: {DOCKER_MANIFEST}" '
                   f"-X DELETE {registry.url}/v2/library/hello-world/manifests/{digest}")
    assert status == "202"

    # distribution's command, as the guides type it, from the image's working directory.
    dry = registry.exec("bin/registry", "garbage-collect", "--dry-run", CONFIG)
    for blob in image_blobs:
        assert f"blob eligible for deletion: {blob}" in dry, dry
    assert image_blobs <= blob_files(store)
    collected = registry.exec("/bin/registry", "garbage-collect", CONFIG)
    assert "deleted 0 manifests and " in collected, collected
    assert not image_blobs & blob_files(store)
    # Run as root by `docker exec`, the collection worked as the store's owner.
    assert owners(store) == {SERVICE_UID}, "root-owned files in the service user's store"
    assert registry.exec("registry", "--version").startswith("dockyard, version ")

    # The registry carries on: the same image pushed again, and pulled back.
    assert docker.push(reference) == digest
    docker("rmi", reference)
    docker("pull", reference)
    assert docker.image_id(reference) == image.config.digest


def test_deletes_are_off_unless_the_environment_enables_them(containers: Containers) -> None:
    registry = containers.run()
    with httpx.Client(base_url=registry.url) as client:
        image = make_image()
        push_image(client, "guides/deletes", "v1", image)
        refused = client.delete(f"/v2/guides/deletes/manifests/{image.digest}")
    assert refused.status_code == 405
    assert refused.json()["errors"][0]["code"] == "UNSUPPORTED"


def test_a_store_distribution_wrote_is_served_unchanged(tmp_path: Path,
                                                        containers: Containers) -> None:
    store = tmp_path / "registry"
    image = make_image(media_type=DOCKER_MANIFEST)
    with run_registry(tmp_path, "distribution", root=store) as distribution, \
            distribution.client() as client:
        push_image(client, "old/app", "v1", image)
    before = {path: path.stat().st_mtime_ns for path in store.rglob("*")}

    registry = containers.run("--volume", f"{store}:/var/lib/registry")
    # registry:2 ran as root, so its store is root's: served as root, as registry:2 did.
    assert registry.main_process_uid() == 0
    with httpx.Client(base_url=registry.url) as client:
        served = client.get("/v2/old/app/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
        assert served.status_code == 200
        assert served.headers["Docker-Content-Digest"] == image.digest
        assert served.content == image.manifest
        for blob in (image.config, *image.layers):
            assert client.get(f"/v2/old/app/blobs/{digest_of(blob)}").content == blob
        assert client.get("/v2/_catalog").json() == {"repositories": ["old/app"]}
    # distribution's files are as they were (dockyard's index is beside them, in dockyard/).
    after = {path: path.stat().st_mtime_ns for path in store.rglob("*")
             if "dockyard" not in path.relative_to(store).parts}
    assert after == {path: mtime for path, mtime in before.items() if path in after}
    assert set(after) == set(before)


def test_health_check_and_a_clean_stop(containers: Containers) -> None:
    registry = containers.run("--health-interval", "1s")
    deadline = time.monotonic() + 60
    while registry.inspect("{{.State.Health.Status}}") != "healthy":
        assert time.monotonic() < deadline, registry.inspect("{{json .State.Health}}")
        time.sleep(0.5)

    began = time.monotonic()
    registry.docker("stop", "--time", "30", registry.name)
    took = time.monotonic() - began
    # SIGTERM reached the server (PID 1) and it exited by itself, well before the kill.
    assert registry.inspect("{{.State.ExitCode}}") == "0", registry.logs()
    assert took < 10, f"docker stop took {took:.1f}s"


def test_a_stop_while_starting_is_not_lost(containers: Containers) -> None:
    # The kernel delivers to a PID 1 only the signals it handles. Here start-up waits on an
    # index database that takes the connection and never answers (a socket nobody accepts
    # on): the stop lands after the imports, the config and the store's checks, before the
    # server's own handlers, where a SIGTERM used to be lost until the SIGKILL.
    with socket.create_server(("127.0.0.1", 0)) as database:
        registry = containers.start(
            "--env", "REGISTRY_DATABASE_ENABLED=true",
            "--env", "REGISTRY_DATABASE_HOST=127.0.0.1",
            "--env", f"REGISTRY_DATABASE_PORT={database.getsockname()[1]}",
            "--env", "REGISTRY_DATABASE_DBNAME=registry",
            "--env", "REGISTRY_DATABASE_CONNECTTIMEOUT=60s")
        connecting, _, _ = select.select([database], [], [], 60)
        assert connecting, f"no connection to the database:\n{registry.logs()}"
        began = time.monotonic()
        registry.docker("stop", "--time", "30", registry.name)
        took = time.monotonic() - began
    assert took < 8, f"docker stop took {took:.1f}s: the SIGTERM was lost\n{registry.logs()}"
    # As SIGTERM ends any process that is not PID 1 (and the container under --init).
    assert registry.inspect("{{.State.ExitCode}}") == "143", registry.logs()
    assert "stopped by SIGTERM" in registry.logs()


NGINX_WRAPPER = """
worker_processes 2;
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
{site}
}}
"""


def deploy_nginx_config(work: Path, upstream: str, https_port: int, http_port: int,
                        certificate: Path) -> str:
    """deploy/nginx/registry.conf as shipped, with only what a deployment changes: the
    upstream's address, the ports and the certificate's path."""
    site = (REPO / "deploy/nginx/registry.conf").read_text()
    replacements = {
        "server registry:5000;": f"server {upstream};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl;": f"listen 127.0.0.1:{https_port} ssl;",
        "listen [::]:443 ssl;": "",
        "/etc/nginx/certs/registry.crt": str(certificate),
        "/etc/nginx/certs/registry.key": str(certificate),
    }
    for shipped, local in replacements.items():
        assert shipped in site, f"deploy/nginx/registry.conf no longer has {shipped!r}"
        site = site.replace(shipped, local)
    return NGINX_WRAPPER.format(work=work, site=site)


@dataclass
class Proxy:
    host: str
    http_port: int
    cert_dir: Path
    trust: ssl.SSLContext


@contextlib.contextmanager
def shipped_nginx(tmp_path: Path, upstream: str, nginx_checks_passwords: Path | None = None
                  ) -> Iterator[Proxy]:
    """Debian's nginx with deploy/nginx/registry.conf, TLS from a certificate made here; with
    `nginx_checks_passwords` (an htpasswd file), the config's option 2 lines uncommented."""
    nginx = require_tool("nginx")
    work = tmp_path / "nginx"
    work.mkdir()
    authority = trustme.CA()
    issued = authority.issue_cert("127.0.0.1", "localhost")
    certificate = work / "server.pem"
    issued.private_key_and_cert_chain_pem.write_to_path(str(certificate))
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    authority.cert_pem.write_to_path(str(cert_dir / "ca.crt"))
    https_port, http_port = free_port(), free_port()
    text = deploy_nginx_config(work, upstream, https_port, http_port, certificate)
    if nginx_checks_passwords is not None:
        for line in OPTION_2_LINES:
            assert f"# {line}" in text, f"deploy/nginx/registry.conf has no '# {line}'"
            text = text.replace(f"# {line}", line)
        text = text.replace("/etc/nginx/auth/htpasswd", str(nginx_checks_passwords))
    config = work / "nginx.conf"
    config.write_text(text)
    subprocess.run([nginx, "-t", "-p", str(work), "-c", str(config)], check=True,
                   capture_output=True)
    process = subprocess.Popen([nginx, "-p", str(work), "-c", str(config), "-g", "daemon off;"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=(work / "stderr").open("wb"))
    proxy = Proxy(f"127.0.0.1:{https_port}", http_port, cert_dir,
                  ssl.create_default_context(cafile=str(cert_dir / "ca.crt")))
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"https://{proxy.host}/v2/", verify=proxy.trust, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, (work / "stderr").read_text()
                time.sleep(0.1)
        yield proxy
    finally:
        process.terminate()
        process.wait(timeout=30)


OPTION_2_LINES = ('auth_basic "Registry realm";',
                  "auth_basic_user_file /etc/nginx/auth/htpasswd;",
                  "add_header Docker-Distribution-Api-Version registry/2.0 always;")


def test_docker_and_skopeo_push_a_large_layer_through_the_shipped_nginx_config(
        tmp_path: Path, docker: Docker, containers: Containers) -> None:
    registry = containers.run("--volume", f"{tmp_path / 'registry'}:/var/lib/registry")
    with shipped_nginx(tmp_path, f"127.0.0.1:{registry.port}") as proxy:
        host = proxy.host
        assert httpx.get(f"https://{host}/v2/", verify=proxy.trust).status_code == 200
        # Plain HTTP is sent to TLS.
        moved = httpx.get(f"http://127.0.0.1:{proxy.http_port}/v2/")
        assert moved.status_code == 301
        assert moved.headers["Location"].startswith("https://")
        # Upload locations point back at nginx's https address.
        started = httpx.post(f"https://{host}/v2/big/probe/blobs/uploads/", verify=proxy.trust)
        assert started.status_code == 202
        assert started.headers["Location"].startswith(f"https://{host}/v2/big/probe/")

        image = large_image("through-nginx", LARGE_LAYER)
        # docker: pushed through nginx, removed, pulled back through nginx.
        reference = f"{host}/big/docker:v1"
        load_image(docker, tmp_path, image, reference)
        docker.push(reference)
        docker("rmi", reference)
        docker("pull", reference)
        assert docker.image_id(reference) == image.config.digest
        # skopeo: the same image from an OCI layout, verifying nginx's certificate.
        skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
        layout = write_image_layout(tmp_path / "layout", "v1", image)
        cert_dir = str(proxy.cert_dir)
        skopeo("copy", "--quiet", "--dest-cert-dir", cert_dir, layout.ref("v1"),
               f"docker://{host}/big/skopeo:v1")
        skopeo("copy", "--quiet", "--src-cert-dir", cert_dir,
               f"docker://{host}/big/skopeo:v1", f"oci:{tmp_path / 'back'}:v1")
        back = read_oci_layout(tmp_path / "back")
        for blob in [image.manifest, *image.blobs]:
            assert back.read_blob(blob.digest) == blob.data


def compose_environment() -> dict[str, str]:
    compose = yaml.safe_load((REPO / "deploy/compose.yaml").read_text())
    return {name: str(value) for name, value in
            compose["services"]["registry"]["environment"].items()}


@pytest.mark.parametrize("checker", ["dockyard", "nginx"])
def test_both_ways_of_checking_passwords_in_the_recipe(
        tmp_path: Path, docker: Docker, containers: Containers, checker: str) -> None:
    """Option 1: the registry service's environment from deploy/compose.yaml (dockyard reads
    the htpasswd file mounted at /auth); option 2: nginx's auth_basic lines of the config."""
    htpasswd = require_tool("htpasswd")
    auth = tmp_path / "auth"
    auth.mkdir()
    subprocess.run([htpasswd, "-Bbc", str(auth / "htpasswd"), "alice", "s3cret-pass"],
                   check=True, capture_output=True)
    auth.chmod(0o755)
    (auth / "htpasswd").chmod(0o644)
    readable: Path | None = None
    if checker == "dockyard":
        options = [f"--env={name}={value}" for name, value in compose_environment().items()]
        registry = containers.run(*options, "--volume", f"{auth}:/auth:ro")
        nginx_file = None
    else:
        registry = containers.run()
        # nginx's workers (nobody) read the file on each request: not from under the test's
        # private directory.
        readable = Path(tempfile.mkdtemp(prefix="dy-nginx-auth-"))
        readable.chmod(0o755)
        nginx_file = readable / "htpasswd"
        shutil.copy(auth / "htpasswd", nginx_file)
        nginx_file.chmod(0o644)
    with contextlib.ExitStack() as cleanup:
        if readable is not None:
            cleanup.callback(shutil.rmtree, readable, True)
        proxy = cleanup.enter_context(
            shipped_nginx(tmp_path, f"127.0.0.1:{registry.port}", nginx_file))
        anonymous = httpx.get(f"https://{proxy.host}/v2/", verify=proxy.trust)
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert anonymous.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
        wrong = docker("login", "--username", "alice", "--password", "wrong", proxy.host,
                       check=False)
        assert "Login Succeeded" not in wrong
        assert "Login Succeeded" in docker("login", "--username", "alice", "--password",
                                           "s3cret-pass", proxy.host)
        image = sample_image(f"login-{checker}", layers=1)
        reference = f"{proxy.host}/private/app:v1"
        load_image(docker, tmp_path, image, reference)
        digest = docker.push(reference)
        docker("logout", proxy.host)
        listed = httpx.get(f"https://{proxy.host}/v2/private/app/tags/list", verify=proxy.trust,
                           auth=("alice", "s3cret-pass"))
        assert listed.json() == {"name": "private/app", "tags": ["v1"]}
        assert httpx.get(f"https://{proxy.host}/v2/private/app/manifests/{digest}",
                         verify=proxy.trust).status_code == 401
