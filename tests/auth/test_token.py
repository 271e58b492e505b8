"""Token authentication (distribution's auth.token, the Docker registry token spec) and
dockyard's own token issuer (auth.issuer), through a running dockyard, httpx and skopeo.
Keys, certificates and the issuer's set-up are in tests/support/tokens.py; external issuers
are played by the test signing its own JWTs."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml

from dockyard.config import load_config
from dockyard.config.loader import ConfigError
from tests.support.clients import Skopeo
from tests.support.images import read_oci_layout, sample_image, write_image_layout
from tests.support.oci import (
    digest_of,
    error_codes,
    make_image,
    push_blob,
    push_image,
    random_blob,
)
from tests.support.rawhttp import build_request, exchange
from tests.support.server import require_tool, run_registry
from tests.support.tokens import (
    ISSUER,
    RULES,
    SERVICE,
    TokenSetup,
    bearer,
    make_key_pair,
    mint,
    repo_access,
    run_issuer,
    write_users,
)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[TokenSetup]:
    with run_issuer(tmp_path, {"expiration": "5m", "rules": RULES,
                               "groups": {"ci": ["bob"]}}) as running:
        yield running


def challenge(setup: TokenSetup, scope: str | None = None, error: str | None = None) -> str:
    text = f'Bearer realm="{setup.realm}",service="{SERVICE}"'
    if scope:
        text += f',scope="{scope}"'
    if error:
        text += f',error="{error}"'
    return text


# -- the registry's side: challenges and token checks ---------------------------------


def test_anonymous_gets_401_with_bearer_challenge(setup: TokenSetup) -> None:
    for method, path, scope in (
            ("GET", "/v2/", None),
            ("GET", "/v2/_catalog", "registry:catalog:*"),
            ("GET", "/v2/some/repo/tags/list", "repository:some/repo:pull"),
            ("HEAD", "/v2/some/repo/manifests/latest", "repository:some/repo:pull"),
            ("POST", "/v2/some/repo/blobs/uploads/", "repository:some/repo:pull,push"),
            ("DELETE", "/v2/some/repo/manifests/latest", "repository:some/repo:delete")):
        response = httpx.request(method, setup.registry.url + path)
        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"] == challenge(setup, scope), path
        if method != "HEAD":
            assert error_codes(response) == ["UNAUTHORIZED"]
        assert response.headers["Docker-Distribution-Api-Version"] == "registry/2.0"


def test_issued_token_is_accepted_and_pushes(setup: TokenSetup) -> None:
    response = setup.token_response("repository:alice/app:pull,push",
                                    auth=("alice", "wonderland"), account="alice")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"token", "access_token", "expires_in", "issued_at"}
    assert body["token"] == body["access_token"]
    assert body["expires_in"] == 300
    assert datetime.datetime.fromisoformat(body["issued_at"])
    assert response.headers["Cache-Control"] == "no-store"
    claims = setup.claims(body["token"])
    assert claims["sub"] == "alice"
    assert claims["access"] == repo_access("alice/app", "pull", "push")
    assert jwt.get_unverified_header(body["token"])["alg"] == "RS256"
    with setup.registry.client(headers=bearer(body["token"])) as client:
        assert client.get("/v2/").status_code == 200
        push_image(client, "alice/app", "v1", make_image())
        assert client.get("/v2/alice/app/tags/list").json()["tags"] == ["v1"]
        # The token names alice/app only.
        other = client.get("/v2/alice/other/tags/list")
        assert other.status_code == 401
        assert other.headers["WWW-Authenticate"] == challenge(
            setup, "repository:alice/other:pull", "insufficient_scope")


def test_grants_are_the_rules_intersected_with_the_request(setup: TokenSetup) -> None:
    def granted(*scopes: str, auth: tuple[str, str] | None = None) -> list[Any]:
        return list(setup.claims(setup.token(*scopes, auth=auth))["access"])

    alice, bob, carol = (("alice", "wonderland"), ("bob", "builder"), ("carol", "reader"))
    assert granted("repository:x/y:pull,push,delete", auth=alice) == repo_access(
        "x/y", "pull", "push", "delete")
    assert granted("repository:x/y:pull,push", auth=carol) == repo_access("x/y", "pull")
    assert granted("repository:team/app:pull,push,delete", auth=bob) == repo_access(
        "team/app", "pull", "push")
    assert granted("repository:elsewhere/app:pull", auth=bob) == []
    assert granted("repository:public/app:pull", auth=bob) == repo_access("public/app", "pull")
    assert granted("repository:public/app:pull,push") == repo_access("public/app", "pull")
    assert granted("repository:private/app:pull") == []
    # Several scopes, as repeated parameters and space-separated.
    assert granted("repository:a/b:pull", "repository:team/c:push repository:d:pull",
                   auth=bob) == repo_access("team/c", "push")
    # The catalog names every repository: users with a rule for "*" only.
    catalog = [{"type": "registry", "name": "catalog", "actions": ["*"]}]
    assert granted("registry:catalog:*", auth=alice) == catalog
    assert granted("registry:catalog:*", auth=carol) == catalog
    assert granted("registry:catalog:*", auth=bob) == []
    assert granted("registry:catalog:*") == []
    # No scope: a token that only proves who the client is (docker login).
    assert granted(auth=alice) == []


def test_issuer_refuses_bad_credentials_and_requests(setup: TokenSetup) -> None:
    for auth in (("alice", "wrong"), ("mallory", "wonderland")):
        response = setup.token_response("repository:x:pull", auth=auth)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == f'Basic realm="{SERVICE}"'
        assert error_codes(response) == ["UNAUTHORIZED"]
    wrong_service = setup.token_response("repository:x:pull", service="another")
    assert wrong_service.status_code == 400
    bad_scope = setup.token_response("nonsense")
    assert bad_scope.status_code == 400
    other_account = setup.token_response(auth=("alice", "wonderland"), account="bob")
    assert other_account.status_code == 400
    post = httpx.post(setup.realm, params={"service": SERVICE})
    assert post.status_code == 405


def test_bad_tokens_are_refused(setup: TokenSetup, tmp_path: Path) -> None:
    other = make_key_pair(tmp_path, "other", "rsa")
    pull = repo_access("x/y", "pull")
    path = "/v2/x/y/tags/list"
    invalid = challenge(setup, "repository:x/y:pull", "invalid_token")
    tokens = {
        "expired": mint(setup.pair, pull, age=3600, lifetime=300),
        "not yet valid": mint(setup.pair, pull, age=-3600),
        "other key": mint(other, pull),
        "wrong audience": mint(setup.pair, pull, audience="another-registry"),
        "wrong issuer": mint(setup.pair, pull, issuer="someone-else"),
        "garbage": "not.a.jwt",
        "unsigned": jwt.encode({"iss": ISSUER, "aud": SERVICE, "exp": time.time() + 300,
                                "access": pull}, None, algorithm="none"),
        "shared secret": jwt.encode({"iss": ISSUER, "aud": SERVICE, "exp": time.time() + 300,
                                     "access": pull}, "a" * 32, algorithm="HS256"),
    }
    for reason, token in tokens.items():
        response = httpx.get(setup.registry.url + path, headers=bearer(token))
        assert response.status_code == 401, reason
        assert response.headers["WWW-Authenticate"] == invalid, reason
        assert error_codes(response) == ["UNAUTHORIZED"], reason
    # Valid, but for another repository or another action.
    for access in (repo_access("x/other", "pull"), repo_access("x/y", "push")):
        response = httpx.get(setup.registry.url + path, headers=bearer(mint(setup.pair, access)))
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == challenge(
            setup, "repository:x/y:pull", "insufficient_scope")
    # A good token, with an audience list, and the "*" action.
    for token in (mint(setup.pair, pull, audience=["elsewhere", SERVICE]),
                  mint(setup.pair, repo_access("x/y", "*"))):
        response = httpx.get(setup.registry.url + path, headers=bearer(token))
        assert response.status_code == 404  # allowed; the repository does not exist
        assert error_codes(response) == ["NAME_UNKNOWN"]


def test_a_remembered_token_still_expires(setup: TokenSetup) -> None:
    """Verified tokens are remembered, but each use checks their lifetime: this one is
    inside the 60 s leeway after its exp for a few seconds, then refused."""
    token = mint(setup.pair, repo_access("x/y", "pull"), age=300 + 56, lifetime=300)
    refused_after = jwt.decode(token, options={"verify_signature": False})["exp"] + 60
    url = setup.registry.url + "/v2/x/y/tags/list"
    deadline = time.time() + 1
    while time.time() < deadline:
        assert httpx.get(url, headers=bearer(token)).status_code == 404  # allowed; no repo
    time.sleep(max(0.0, refused_after + 1 - time.time()))
    expired = httpx.get(url, headers=bearer(token))
    assert expired.status_code == 401
    assert expired.headers["WWW-Authenticate"] == challenge(
        setup, "repository:x/y:pull", "invalid_token")
    assert "expired" in expired.json()["errors"][0]["message"]


def test_pull_only_token_cannot_push_or_delete(setup: TokenSetup) -> None:
    writer = setup.token("repository:shared/app:pull,push,delete", auth=("alice", "wonderland"))
    with setup.registry.client(headers=bearer(writer)) as client:
        pushed = push_image(client, "shared/app", "v1", make_image())
    digest = pushed.headers["Docker-Content-Digest"]
    reader = setup.token("repository:shared/app:pull,push,delete", auth=("carol", "reader"))
    assert setup.claims(reader)["access"] == repo_access("shared/app", "pull")
    with setup.registry.client(headers=bearer(reader)) as client:
        assert client.get(f"/v2/shared/app/manifests/{digest}",
                          headers={"Accept": make_image().media_type}).status_code == 200
        delete = client.delete(f"/v2/shared/app/manifests/{digest}")
        assert delete.status_code == 401
        assert delete.headers["WWW-Authenticate"] == challenge(
            setup, "repository:shared/app:delete", "insufficient_scope")
        upload = client.post("/v2/shared/app/blobs/uploads/")
        assert upload.status_code == 401
        assert 'scope="repository:shared/app:pull,push"' in upload.headers["WWW-Authenticate"]
        assert client.get("/v2/shared/app/tags/list").json()["tags"] == ["v1"]


def test_anonymous_pull_of_public_repository(setup: TokenSetup) -> None:
    writer = setup.token("repository:public/hello:pull,push", auth=("alice", "wonderland"))
    with setup.registry.client(headers=bearer(writer)) as client:
        push_image(client, "public/hello", "latest", make_image())
    anonymous = setup.token("repository:public/hello:pull,push")
    assert setup.claims(anonymous)["sub"] == ""
    assert setup.claims(anonymous)["access"] == repo_access("public/hello", "pull")
    with setup.registry.client(headers=bearer(anonymous)) as client:
        assert client.get("/v2/public/hello/tags/list").json()["tags"] == ["latest"]
        assert client.post("/v2/public/hello/blobs/uploads/").status_code == 401
    nothing = setup.token("repository:private/hello:pull")
    response = httpx.get(setup.registry.url + "/v2/private/hello/tags/list",
                         headers=bearer(nothing))
    assert response.status_code == 401


# -- skopeo through the whole token flow ----------------------------------------------


@pytest.mark.clients
def test_skopeo_push_and_pull_through_the_issuer(setup: TokenSetup, tmp_path: Path) -> None:
    binary = require_tool("skopeo")
    host = setup.registry.host
    image = sample_image("token", layers=2)
    write_image_layout(tmp_path / "src", "v1", image)
    source = f"oci:{tmp_path / 'src'}:v1"
    expected = read_oci_layout(tmp_path / "src").tags["v1"]["digest"]

    anonymous = Skopeo(binary, tmp_path / "anonymous")
    denied = anonymous("copy", "--dest-tls-verify=false", source,
                       f"docker://{host}/team/app:v1", check=False)
    assert denied.returncode != 0
    assert "denied" in denied.stderr

    alice = Skopeo(binary, tmp_path / "alice")
    alice("login", "--tls-verify=false", "-u", "alice", "-p", "wonderland", host)
    alice.copy(source, f"docker://{host}/team/app:v1")
    alice.copy(source, f"docker://{host}/public/app:v1")
    alice.copy(f"docker://{host}/team/app:v1", f"oci:{tmp_path / 'alice-back'}:v1")
    assert read_oci_layout(tmp_path / "alice-back").tags["v1"]["digest"] == expected

    bob = Skopeo(binary, tmp_path / "bob")  # group ci: pull and push on team/*
    bob.copy(source, f"docker://{host}/team/bob:v1", "--dest-creds", "bob:builder")

    carol = Skopeo(binary, tmp_path / "carol")  # pull only
    carol.copy(f"docker://{host}/team/app:v1", f"oci:{tmp_path / 'carol-back'}:v1",
               "--src-creds", "carol:reader")
    assert read_oci_layout(tmp_path / "carol-back").tags["v1"]["digest"] == expected
    push = carol("copy", "--dest-tls-verify=false", "--dest-creds", "carol:reader", source,
                 f"docker://{host}/team/carol:v1", check=False)
    assert push.returncode != 0
    assert "insufficient scope" in push.stderr
    delete = carol("delete", "--tls-verify=false", "--creds", "carol:reader",
                   f"docker://{host}/team/app:v1", check=False)
    assert delete.returncode != 0
    assert "insufficient scope" in delete.stderr and "401" in delete.stderr
    alice.copy(f"docker://{host}/team/app:v1", f"oci:{tmp_path / 'still'}:v1")  # not deleted

    anonymous.copy(f"docker://{host}/public/app:v1", f"oci:{tmp_path / 'public'}:v1")
    assert read_oci_layout(tmp_path / "public").tags["v1"]["digest"] == expected
    private = anonymous("copy", "--src-tls-verify=false", f"docker://{host}/team/app:v1",
                        f"oci:{tmp_path / 'private'}:v1", check=False)
    assert private.returncode != 0
    assert "insufficient scope" in private.stderr

    alice("delete", "--tls-verify=false", f"docker://{host}/team/app:v1")
    gone = httpx.get(setup.registry.url + "/v2/team/app/tags/list", headers=bearer(
        setup.token("repository:team/app:pull", auth=("alice", "wonderland"))))
    assert gone.json()["tags"] == []


# -- an external authorization server --------------------------------------------------


@pytest.mark.parametrize("kind", ["ec", "rsa-jwks"])
def test_external_issuer(tmp_path: Path, kind: str) -> None:
    """Only auth.token is configured; the test signs tokens as an outside server would."""
    if kind == "ec":
        pair = make_key_pair(tmp_path, "external", "ec")
        token_config = {"rootcertbundle": str(pair.cert_path)}
        kid = None
    else:
        pair = make_key_pair(tmp_path, "external", "rsa")
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(pair.key.public_key()))
        jwks = tmp_path / "keys.json"
        jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "key-1", "use": "sig"}]}))
        token_config = {"jwks": str(jwks)}
        kid = "key-1"
    realm = "https://auth.example.com/token"
    config = {"auth": {"token": {"realm": realm, "service": SERVICE, "issuer": ISSUER,
                                 **token_config}}}
    with run_registry(tmp_path, config=config) as running:
        anonymous = httpx.get(running.url + "/v2/")
        assert anonymous.status_code == 401
        assert anonymous.headers["WWW-Authenticate"] == \
            f'Bearer realm="{realm}",service="{SERVICE}"'
        token = mint(pair, repo_access("ext/app", "pull", "push"), kid=kid)
        with running.client(headers=bearer(token)) as client:
            assert client.get("/v2/").status_code == 200
            push_image(client, "ext/app", "v1", make_image())
            assert client.get("/v2/ext/app/tags/list").json()["tags"] == ["v1"]
            assert client.delete("/v2/ext/app/manifests/v1").status_code == 401
        # No issuer configured: dockyard serves no token endpoint.
        assert httpx.get(running.url + "/auth/token").status_code == 404
        stranger = make_key_pair(tmp_path, "stranger", "ec" if kind == "ec" else "rsa")
        forged = mint(stranger, repo_access("ext/app", "pull"), kid=kid)
        assert httpx.get(running.url + "/v2/ext/app/tags/list",
                         headers=bearer(forged)).status_code == 401


# -- configuration -----------------------------------------------------------------------


def load_auth(tmp_path: Path, auth: dict[str, Any]) -> Any:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"version": 0.1, "auth": auth, "storage": {
        "filesystem": {"rootdirectory": str(tmp_path / "store")}}}))
    return load_config(config, environ={})


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    pair = make_key_pair(tmp_path, "good", "rsa")
    other = make_key_pair(tmp_path, "other", "ec")
    users = write_users(tmp_path / "htpasswd")
    token = {"realm": "https://r.example.com/auth/token", "service": SERVICE,
             "issuer": ISSUER, "rootcertbundle": str(pair.cert_path)}
    issuer = {"key": str(pair.key_path), "htpasswd": str(users), "rules": RULES,
              "groups": {"ci": ["bob"]}}
    loaded = load_auth(tmp_path, {"token": token, "issuer": issuer})
    assert loaded.token.realm == token["realm"]
    assert loaded.token_issuer.expiration == 300
    # Without a bundle, the issuer's own key is trusted.
    without_bundle = {**token, "rootcertbundle": None}
    assert load_auth(tmp_path, {"token": without_bundle, "issuer": issuer}).token is not None

    cases: list[tuple[dict[str, Any], str]] = [
        ({"token": token, "htpasswd": {"path": str(users)}}, "auth:"),
        ({"issuer": issuer}, "auth.issuer:"),
        ({"token": {**token, "realm": None}}, "auth.token.realm"),
        ({"token": {**token, "realm": "auth/token"}}, "auth.token.realm"),
        ({"token": {**token, "service": ""}}, "auth.token.service"),
        ({"token": {**token, "rootcertbundle": None}}, "auth.token.rootcertbundle"),
        ({"token": {**token, "rootcertbundle": str(tmp_path / "absent")}},
         "auth.token.rootcertbundle"),
        ({"token": {**token, "rootcertbundle": str(users)}}, "auth.token.rootcertbundle"),
        ({"token": {**token, "jwks": str(users)}}, "auth.token.jwks"),
        ({"token": {**token, "signingalgorithms": ["HS256"]}}, "auth.token.signingalgorithms"),
        ({"token": {**token, "rootcertbundle": str(other.cert_path)}, "issuer": issuer},
         "auth.issuer.key"),
        ({"token": token, "issuer": {**issuer, "key": str(pair.cert_path)}}, "auth.issuer.key"),
        ({"token": token, "issuer": {**issuer, "htpasswd": str(tmp_path / "absent")}},
         "auth.issuer.htpasswd"),
        ({"token": token, "issuer": {**issuer, "expiration": "soon"}},
         "auth.issuer.expiration"),
        ({"token": token, "issuer": {**issuer, "expire": "5m"}}, "auth.issuer.expire"),
        ({"token": token, "issuer": {**issuer, "rules": [{"user": "a", "repository": "*",
                                                          "actions": ["write"]}]}},
         "auth.issuer.rules[0].actions"),
        ({"token": token, "issuer": {**issuer, "rules": [RULES[0], {"group": "nobody",
                                                                    "repository": "*",
                                                                    "actions": []}]}},
         "auth.issuer.rules[1].group"),
        ({"token": token, "issuer": {**issuer, "rules": [{"user": "a", "group": "ci",
                                                          "repository": "*", "actions": []}]}},
         "auth.issuer.rules[0]"),
        ({"token": token, "issuer": {**issuer, "groups": {"ci": "bob"}}},
         "auth.issuer.groups.ci"),
    ]
    for auth, key in cases:
        with pytest.raises(ConfigError) as raised:
            load_auth(tmp_path, auth)
        assert key in str(raised.value), (auth, str(raised.value))


def test_serve_exits_2_on_a_bad_token_config(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(yaml.safe_dump({"version": 0.1, "storage": {
        "filesystem": {"rootdirectory": str(tmp_path / "store")}}, "auth": {"token": {
            "realm": "https://r.example.com/auth/token", "service": SERVICE,
            "issuer": ISSUER, "rootcertbundle": str(tmp_path / "absent.crt")}}}))
    result = subprocess.run([sys.executable, "-m", "dockyard", "serve", str(config)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "auth.token.rootcertbundle" in result.stderr


def test_distribution_accepts_tokens_of_dockyards_issuer(setup: TokenSetup,
                                                         tmp_path: Path) -> None:
    """The issuer's `kid` is libtrust's key id, which distribution 2.8 looks keys up by."""
    config = {"auth": setup.token_config()}
    with run_registry(tmp_path / "distribution", kind="distribution", config=config) as other:
        assert other.url != setup.registry.url
        assert httpx.get(other.url + "/v2/").status_code == 401
        token = setup.token("repository:dist/app:pull,push", auth=("alice", "wonderland"))
        with other.client(headers=bearer(token)) as client:
            assert client.get("/v2/").status_code == 200
            push_image(client, "dist/app", "v1", make_image())
            assert client.get("/v2/dist/app/tags/list").json()["tags"] == ["v1"]
            assert client.delete("/v2/dist/app/manifests/v1").status_code == 401


# -- cross-repository mounts need pull on `from` ----------------------------------------


def test_mount_needs_pull_on_the_source_repository(setup: TokenSetup) -> None:
    """A token for team/x alone cannot mount (or learn of) blobs of secret/y: the mount
    becomes an ordinary upload, the same answer as for a digest nobody has."""
    owner = setup.token("repository:secret/y:pull,push", auth=("alice", "wonderland"))
    with setup.registry.client(headers=bearer(owner)) as client:
        secret = push_blob(client, "secret/y", random_blob())
    # bob (group ci) may push team/*; docker also asks for pull on `from`, which bob's
    # rules do not allow, so the token lacks it.
    token = setup.token("repository:team/x:pull,push", "repository:secret/y:pull",
                        auth=("bob", "builder"))
    assert setup.claims(token)["access"] == repo_access("team/x", "pull", "push")
    missing = digest_of(b"no such blob anywhere")
    with setup.registry.client(headers=bearer(token)) as client:
        for digest in (secret, missing):
            response = client.post("/v2/team/x/blobs/uploads/",
                                   params={"mount": digest, "from": "secret/y"})
            assert response.status_code == 202, (digest, response.text)
            assert "/v2/team/x/blobs/uploads/" in response.headers["Location"]
            assert "Docker-Content-Digest" not in response.headers
        assert client.get(f"/v2/team/x/blobs/{secret}").status_code == 404
    # A token that grants push (but not pull) on the source does not do either.
    pusher = mint(setup.pair, repo_access("team/x", "pull", "push")
                  + repo_access("secret/y", "push"))
    with setup.registry.client(headers=bearer(pusher)) as client:
        response = client.post("/v2/team/x/blobs/uploads/",
                               params={"mount": secret, "from": "secret/y"})
        assert response.status_code == 202, response.text
    # With pull on the source the mount is done.
    allowed = setup.token("repository:team/x:pull,push", "repository:secret/y:pull",
                          auth=("alice", "wonderland"))
    with setup.registry.client(headers=bearer(allowed)) as client:
        response = client.post("/v2/team/x/blobs/uploads/",
                               params={"mount": secret, "from": "secret/y"})
        assert response.status_code == 201, response.text
        assert response.headers["Docker-Content-Digest"] == secret
    with setup.registry.client(headers=bearer(token)) as client:
        assert client.get(f"/v2/team/x/blobs/{secret}").status_code == 200


# Names that are not repository names: control characters, a quote, a line break,
# non-ASCII letters (percent-encoded, so they reach the router decoded).
INVALID_NAMES = ("a%00b", "a%01b", "team/x%22,scope=%22registry:admin:*", "a%0d%0aX-Y:%20z",
                 "caf%C3%A9", "a%7Fb")


def assert_name_invalid(host: str, method: str, path: str) -> None:
    """The request gets 400 NAME_INVALID (not a challenge echoing the name), as an answer:
    the connection is not closed on it."""
    response = exchange(host, build_request(method, path, host))
    assert response.status == 400, (method, path, response)
    assert "www-authenticate" not in response.headers
    assert all(" " <= char <= "~" for value in response.headers.values() for char in value)
    if method != "HEAD":
        assert response.json()["errors"][0]["code"] == "NAME_INVALID"


@pytest.mark.parametrize("name", INVALID_NAMES)
def test_invalid_names_get_name_invalid_not_a_challenge(setup: TokenSetup, name: str) -> None:
    host = setup.registry.host
    for method, path in (("GET", f"/v2/{name}/tags/list"),
                         ("HEAD", f"/v2/{name}/manifests/latest"),
                         ("POST", f"/v2/{name}/blobs/uploads/"),
                         ("DELETE", f"/v2/{name}/manifests/latest"),
                         ("GET", f"/v2/{name}/referrers/{digest_of(b'x')}")):
        assert_name_invalid(host, method, path)
    # A token's grants make no difference; the mount source is checked the same way.
    token = setup.token("repository:team/x:pull,push", auth=("bob", "builder"))
    with setup.registry.client(headers=bearer(token)) as client:
        response = client.post("/v2/team/x/blobs/uploads/",
                               params={"mount": digest_of(b"x"), "from": name})
        assert response.status_code == 202


def test_access_log_names_the_tokens_subject(setup: TokenSetup) -> None:
    fetched = setup.token_response("repository:alice/logged:pull,push",
                                   auth=("alice", "wonderland"))
    token = fetched.json()["token"]
    with setup.registry.client(headers=bearer(token)) as client:
        listed = client.get("/v2/alice/logged/tags/list", headers={"X-Request-Id": "by-token"})
    assert listed.headers["X-Request-Id"] == "by-token"
    deadline = time.monotonic() + 30
    lines: list[str] = []
    while time.monotonic() < deadline and len(lines) < 2:
        lines = [line for line in setup.registry.logs().splitlines()
                 if "http.request.id=by-token" in line
                 or f"http.request.id={fetched.headers['X-Request-Id']}" in line]
        time.sleep(0.05)
    assert len(lines) == 2, setup.registry.logs()[-3000:]
    assert all(" auth.user.name=alice" in line for line in lines), lines
