"""Helpers for tests that drive real registry clients (skopeo, docker, podman, ctr, oras).

``run`` executes a client and, when it fails, raises with the full command, exit status,
stdout and stderr, so a failing test reports exactly what the client saw.  ``RegistryReader``
reads a registry over plain HTTP to check what the clients really stored.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.images import MANIFEST_ACCEPT, sha256_digest


class CommandFailed(AssertionError):
    def __init__(self, command: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        super().__init__(
            f"command failed with exit status {result.returncode}: {shlex.join(command)}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )


def run(
    command: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
    check: bool = True,
    cwd: str | os.PathLike[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a client command, capturing its output; raise ``CommandFailed`` on failure."""
    result = subprocess.run(
        list(command),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
        check=False,
    )
    if check and result.returncode != 0:
        raise CommandFailed(command, result)
    return result


def run_binary(
    command: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 300
) -> bytes:
    """Run a command whose standard output is binary data, and return that data."""
    result = subprocess.run(
        list(command),
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise CommandFailed(
            command,
            subprocess.CompletedProcess(
                result.args,
                result.returncode,
                result.stdout.decode(errors="replace"),
                result.stderr.decode(errors="replace"),
            ),
        )
    return result.stdout


@dataclass
class Manifest:
    data: bytes
    media_type: str
    digest_header: str | None

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    def json(self) -> Any:
        return httpx.Response(200, content=self.data).json()


class RegistryReader:
    """Read-only checks of a registry's content over the HTTP API."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=60)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> RegistryReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def manifest(self, repo: str, reference: str) -> Manifest:
        response = self.http.get(
            f"/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
        )
        assert response.status_code == 200, (
            f"GET manifest {repo}:{reference} -> {response.status_code} {response.text}"
        )
        return Manifest(
            data=response.content,
            media_type=response.headers.get("content-type", ""),
            digest_header=response.headers.get("docker-content-digest"),
        )

    def manifest_status(self, repo: str, reference: str) -> int:
        response = self.http.head(
            f"/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}
        )
        return response.status_code

    def blob(self, repo: str, digest: str) -> bytes:
        response = self.http.get(f"/v2/{repo}/blobs/{digest}", follow_redirects=True)
        assert response.status_code == 200, (
            f"GET blob {repo}@{digest} -> {response.status_code} {response.text}"
        )
        return response.content

    def has_blob(self, repo: str, digest: str) -> bool:
        response = self.http.head(f"/v2/{repo}/blobs/{digest}")
        return response.status_code == 200

    def tags(self, repo: str) -> list[str]:
        response = self.http.get(f"/v2/{repo}/tags/list")
        if response.status_code == 404:
            return []
        assert response.status_code == 200, f"GET tags {repo} -> {response.status_code}"
        return list(response.json().get("tags") or [])

    def catalog(self) -> list[str]:
        repositories: list[str] = []
        url: str | None = "/v2/_catalog?n=1000"
        while url:
            response = self.http.get(url)
            assert response.status_code == 200, (
                f"GET catalog -> {response.status_code} {response.text}"
            )
            repositories.extend(response.json().get("repositories") or [])
            link = response.headers.get("link")
            url = link.split(";")[0].strip("<> ") if link else None
        return repositories


class Skopeo:
    """skopeo with its own permissive signature policy and no TLS (the registry is plain HTTP)."""

    def __init__(self, binary: str, home: Path) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.binary = binary
        self.policy = home / "policy.json"
        self.policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        self.auth = home / "auth.json"
        self.auth.write_text("{}")

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(
            [self.binary, "--policy", str(self.policy), *args],
            check=check,
            env={"REGISTRY_AUTH_FILE": str(self.auth)},
        )

    def copy(self, source: str, destination: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return self(
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
            *extra,
            source,
            destination,
        )

    def inspect_raw(self, reference: str) -> bytes:
        return run_binary(
            [
                self.binary,
                "--policy",
                str(self.policy),
                "inspect",
                "--raw",
                "--tls-verify=false",
                reference,
            ],
            env={"REGISTRY_AUTH_FILE": str(self.auth)},
        )

    def list_tags(self, reference: str) -> list[str]:
        output = self("list-tags", "--tls-verify=false", reference).stdout
        return list(json.loads(output)["Tags"])
