"""Basic authentication from an htpasswd file, as distribution's auth.htpasswd."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.auth.htpasswd import hash_password
from tests.support.clients import Skopeo
from tests.support.images import read_oci_layout, sample_image, write_image_layout
from tests.support.oci import error_codes, make_image, push_blob, push_image, random_blob
from tests.support.rawhttp import build_request, exchange
from tests.support.server import RunningRegistry, require_tool, run_registry


def passwd(file: Path, user: str, password: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dockyard", "passwd", "--password-stdin",
                           str(file), user], input=password + "\n", capture_output=True,
                          text=True, timeout=60)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[RunningRegistry]:
    """A registry whose users come from a file made by Debian's `htpasswd -B`."""
    htpasswd = require_tool("htpasswd")
    users = tmp_path / "htpasswd"
    subprocess.run([htpasswd, "-Bbc", str(users), "alice", "wonderland"], check=True,
                   capture_output=True)
    assert passwd(users, "bob", "builder").returncode == 0
    config = {"auth": {"htpasswd": {"realm": "Dockyard Test", "path": str(users)}}}
    with run_registry(tmp_path, config=config) as running:
        yield running


def test_anonymous_gets_401_with_basic_challenge(secured: RunningRegistry) -> None:
    for method, path in (("GET", "/v2/"), ("GET", "/v2/_catalog"),
                         ("GET", "/v2/some/repo/tags/list"),
                         ("POST", "/v2/some/repo/blobs/uploads/"),
                         ("DELETE", "/v2/some/repo/manifests/latest")):
        response = httpx.request(method, secured.url + path)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"] == 'Basic realm="Dockyard Test"'
        assert error_codes(response) == ["UNAUTHORIZED"]
        assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def test_right_wrong_and_unknown_credentials(secured: RunningRegistry) -> None:
    for user, password in (("alice", "wonderland"), ("bob", "builder")):
        with secured.client(auth=(user, password)) as client:
            assert client.get("/v2/").status_code == 200
            push_image(client, f"{user}/repo", "v1", make_image())
            assert client.get(f"/v2/{user}/repo/tags/list").json()["tags"] == ["v1"]
    for user, password in (("alice", "wrong"), ("mallory", "wonderland"), ("alice", "")):
        response = httpx.get(secured.url + "/v2/", auth=(user, password))
        assert response.status_code == 401, user
        assert error_codes(response) == ["UNAUTHORIZED"]
    garbled = httpx.get(secured.url + "/v2/", headers={"Authorization": "Basic %%%"})
    assert garbled.status_code == 401


def test_password_change_takes_effect_without_restart(secured: RunningRegistry,
                                                      tmp_path: Path) -> None:
    users = tmp_path / "htpasswd"
    assert httpx.get(secured.url + "/v2/", auth=("bob", "builder")).status_code == 200
    result = passwd(users, "bob", "new-secret")
    assert result.returncode == 0 and "changed password" in result.stderr
    assert httpx.get(secured.url + "/v2/", auth=("bob", "builder")).status_code == 401
    assert httpx.get(secured.url + "/v2/", auth=("bob", "new-secret")).status_code == 200
    assert users.read_text().count("bob:") == 1
    assert users.read_text().startswith("alice:$2y$")  # htpasswd's own entry kept as it was


def test_failed_logins_are_throttled(secured: RunningRegistry) -> None:
    statuses = [httpx.get(secured.url + "/v2/", auth=("alice", f"guess{n}")).status_code
                for n in range(12)]
    assert statuses[:10] == [401] * 10
    assert statuses[-1] == 429
    throttled = httpx.get(secured.url + "/v2/", auth=("alice", "guess-again"))
    assert error_codes(throttled) == ["TOOMANYREQUESTS"]


def test_password_never_logged(secured: RunningRegistry) -> None:
    httpx.get(secured.url + "/v2/", auth=("alice", "wonderland"))
    httpx.get(secured.url + "/v2/", auth=("alice", "not-the-password"))
    assert "wonderland" not in secured.logs()
    assert "not-the-password" not in secured.logs()


def test_skopeo_login_push_and_pull(secured: RunningRegistry, tmp_path: Path) -> None:
    skopeo = Skopeo(require_tool("skopeo"), tmp_path / "skopeo")
    image = sample_image("secured", layers=2)
    write_image_layout(tmp_path / "src", "v1", image)
    denied = skopeo("copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1",
                    f"docker://{secured.host}/secure/image:v1", check=False)
    assert denied.returncode != 0
    assert "unauthorized" in (denied.stderr + denied.stdout).lower()
    skopeo("login", "--tls-verify=false", "-u", "alice", "-p", "wonderland", secured.host)
    skopeo.copy(f"oci:{tmp_path / 'src'}:v1", f"docker://{secured.host}/secure/image:v1")
    skopeo.copy(f"docker://{secured.host}/secure/image:v1", f"oci:{tmp_path / 'back'}:v1")
    back = read_oci_layout(tmp_path / "back")
    source = read_oci_layout(tmp_path / "src")
    assert back.tags["v1"]["digest"] == source.tags["v1"]["digest"]


def test_config_errors(tmp_path: Path) -> None:
    def serve(auth: object) -> subprocess.CompletedProcess[str]:
        import yaml

        config = tmp_path / "config.yml"
        config.write_text(yaml.safe_dump({"version": 0.1, "auth": auth, "storage": {
            "filesystem": {"rootdirectory": str(tmp_path / "store")}}}))
        return subprocess.run([sys.executable, "-m", "dockyard", "serve", str(config)],
                              capture_output=True, text=True, timeout=60)

    missing = serve({"htpasswd": {"realm": "r", "path": str(tmp_path / "absent")}})
    assert missing.returncode == 2 and "auth.htpasswd.path" in missing.stderr
    unknown = serve({"silly": {}})
    assert unknown.returncode == 2 and "auth.silly" in unknown.stderr


def test_passwd_refuses_bad_user_names(tmp_path: Path) -> None:
    result = passwd(tmp_path / "users", "bad:name", "pw")
    assert result.returncode == 2
    assert not (tmp_path / "users").exists()


def test_any_user_mounts_from_any_repository(secured: RunningRegistry) -> None:
    """htpasswd users may do everything, so a mount from another repository is done."""
    with secured.client(auth=("alice", "wonderland")) as client:
        digest = push_blob(client, "alice/private", random_blob())
    with secured.client(auth=("bob", "builder")) as client:
        response = client.post("/v2/bob/app/blobs/uploads/",
                               params={"mount": digest, "from": "alice/private"})
        assert response.status_code == 201, response.text
        assert client.get(f"/v2/bob/app/blobs/{digest}").status_code == 200


def test_invalid_names_get_name_invalid(secured: RunningRegistry) -> None:
    """Control characters and quotes in a name never reach a header: the name is refused
    before credentials are asked for."""
    host = secured.host
    for name in ("a%00b", "a%01b", "x%22y", "a%0d%0aX-Y:%20z", "caf%C3%A9"):
        for method in ("GET", "POST"):
            path = f"/v2/{name}/tags/list" if method == "GET" else f"/v2/{name}/blobs/uploads/"
            response = exchange(host, build_request(method, path, host))
            assert response.status == 400, (name, method, response)
            assert response.json()["errors"][0]["code"] == "NAME_INVALID"
            assert "www-authenticate" not in response.headers


def test_realm_is_a_quoted_string(tmp_path: Path) -> None:
    """A realm with quotes and a backslash is escaped, so it cannot end the parameter
    early or add others to the challenge."""
    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{hash_password('wonderland', rounds=4)}\n")
    realm = 'Dockyard "Test" \\ x'
    config = {"auth": {"htpasswd": {"realm": realm, "path": str(users)}}}
    with run_registry(tmp_path, config=config) as running:
        response = httpx.get(running.url + "/v2/")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Basic realm="Dockyard \\"Test\\" \\\\ x"'
