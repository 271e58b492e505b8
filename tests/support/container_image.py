"""The project's container image, built by the tests the way users build it (`docker build`
with the repository as context), on a base made from Debian packages.

No base image can be pulled here, so the base is made once with `debootstrap --variant=minbase`
(plus python3 and python3-venv, what the Dockerfile asks of a base), kept as a tarball in a
cache directory between runs, and `docker import`ed into each private dockerd. The build's
pip installs from a wheel directory served on loopback (`docker build --network host`), made
from the same package index the test environment uses.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.support.server import require_tool

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
BASE_TAG = f"dockyard-test-base:{SUITE}"
MIRROR = os.environ.get("DOCKYARD_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")


def cache_dir() -> Path:
    configured = os.environ.get("DOCKYARD_TEST_CACHE")
    if configured:
        return Path(configured)
    if os.geteuid() == 0:
        return Path("/var/cache/dockyard-tests")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "dockyard-tests"


def base_tarball() -> Path:
    """A root filesystem of Debian minbase with Python, as a tarball for `docker import`:
    made on first use (a few minutes), then reused."""
    tarball = cache_dir() / f"base-{SUITE}-{'-'.join(BASE_PACKAGES)}.tar"
    if tarball.exists():
        return tarball
    debootstrap = require_tool("debootstrap")
    tarball.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dy-rootfs-", dir=tarball.parent))
    try:
        rootfs = work / "rootfs"
        subprocess.run(
            [debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
             SUITE, str(rootfs), MIRROR],
            check=True, capture_output=True, timeout=1200)
        # What an image does not need: package lists and caches.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for item in (rootfs / leftover).glob("*"):
                if item.is_file():
                    item.unlink()
        partial = work / "base.tar"
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."],
                       check=True, timeout=600)
        partial.rename(tarball)  # whole or not at all: a killed run leaves no half tarball
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return tarball


def make_wheelhouse(target: Path) -> None:
    """Wheels of every dependency (and of setuptools, which builds the project's own wheel
    inside the image), from the package index pip is configured with here."""
    # The package's own dependencies, as pip resolves them for the repository.
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(target), str(REPO)],
        check=True, capture_output=True, timeout=900)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:",
         "--dest", str(target), "setuptools>=77"],
        check=True, capture_output=True, timeout=600)
    # The project's wheel is built in the image, from the repository: not taken from here.
    for built in target.glob("dockyard-*.whl"):
        built.unlink()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """An HTTP server on loopback listing `directory` (pip's --find-links reads it)."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def build_image(docker: list[str], env: dict[str, str], tag: str, work: Path) -> None:
    """Import the base into the daemon `env` points at, then `docker build` the repository's
    Dockerfile on it."""
    require_tool("docker")
    full_env = {**os.environ, **env}
    subprocess.run([*docker, "import", str(base_tarball()), BASE_TAG], env=full_env,
                   check=True, capture_output=True, timeout=600)
    wheels = work / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    make_wheelhouse(wheels)
    with serve_directory(wheels) as url:
        result = subprocess.run(
            [*docker, "build", "--network", "host", "--tag", tag,
             "--build-arg", f"BASE={BASE_TAG}",
             "--build-arg", "PIP_NO_INDEX=1",
             "--build-arg", f"PIP_FIND_LINKS={url}",
             str(REPO)],
            env=full_env, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise AssertionError(f"docker build failed:\n{result.stdout[-6000:]}\n"
                             f"{result.stderr[-4000:]}")
    shutil.rmtree(wheels, ignore_errors=True)
