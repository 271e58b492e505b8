"""The admin API (/admin/gc) behind authentication: htpasswd users, and bearer tokens that
grant `registry:admin:*`, issued by dockyard's own issuer or signed by an outside one."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.config.loader import ConfigError
from tests.auth.test_token import load_auth
from tests.support.oci import error_codes
from tests.support.server import RunningRegistry, require_tool, run_registry
from tests.support.tokens import (
    ISSUER,
    SERVICE,
    TokenSetup,
    bearer,
    make_key_pair,
    mint,
    repo_access,
    run_issuer,
)

ADMIN = {"http": {"admin": {"enabled": True}}}
ADMIN_SCOPE = "registry:admin:*"
ADMIN_ACCESS = [{"type": "registry", "name": "admin", "actions": ["*"]}]
RULES = [
    {"user": "bob", "registry": "admin", "actions": []},  # denied before the rule for all
    {"user": "*", "registry": "admin", "actions": ["*"]},
    {"user": "alice", "repository": "*", "actions": ["*"]},
    {"user": "carol", "repository": "*", "actions": ["pull"]},
]


def admin_requests(url: str, headers: dict[str, str] | None = None,
                   auth: tuple[str, str] | None = None) -> list[httpx.Response]:
    """GET (status) and a dry-run POST (start) of the admin API."""
    return [httpx.get(url + "/admin/gc", headers=headers, auth=auth, timeout=60),
            httpx.post(url + "/admin/gc", params={"dryrun": "true"}, headers=headers,
                       auth=auth, timeout=60)]


# -- htpasswd --------------------------------------------------------------------------


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[RunningRegistry]:
    htpasswd = require_tool("htpasswd")
    users = tmp_path / "htpasswd"
    subprocess.run([htpasswd, "-Bbc", str(users), "alice", "wonderland"], check=True,
                   capture_output=True)
    config = {**ADMIN, "auth": {"htpasswd": {"realm": "Dockyard Admin", "path": str(users)}}}
    with run_registry(tmp_path, config=config) as running:
        yield running


def test_htpasswd_admin_needs_a_valid_user(secured: RunningRegistry) -> None:
    for auth in (None, ("alice", "wrong"), ("mallory", "wonderland")):
        for response in admin_requests(secured.url, auth=auth):
            assert response.status_code == 401, (auth, response.request.method)
            assert response.headers["WWW-Authenticate"] == 'Basic realm="Dockyard Admin"'
            assert error_codes(response) == ["UNAUTHORIZED"]
    status, started = admin_requests(secured.url, auth=("alice", "wonderland"))
    assert status.status_code == 200
    assert status.json()["state"] in ("idle", "running", "finished")
    assert started.status_code in (202, 409)


# -- bearer tokens -----------------------------------------------------------------------


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[TokenSetup]:
    """dockyard as its own token issuer, with the admin API on and admin rules."""
    with run_issuer(tmp_path, {"rules": RULES}, ADMIN) as running:
        yield running


def admin_challenge(setup: TokenSetup, error: str | None = None) -> str:
    text = f'Bearer realm="{setup.realm}",service="{SERVICE}",scope="{ADMIN_SCOPE}"'
    return text + (f',error="{error}"' if error else "")


def test_token_admin_anonymous_gets_the_admin_challenge(setup: TokenSetup) -> None:
    for response in admin_requests(setup.registry.url):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == admin_challenge(setup)
        assert error_codes(response) == ["UNAUTHORIZED"]
        assert response.json()["errors"][0]["detail"] == [ADMIN_SCOPE]


def test_issuer_grants_admin_by_registry_rules(setup: TokenSetup) -> None:
    alice = setup.token(ADMIN_SCOPE, auth=("alice", "wonderland"))
    assert setup.claims(alice)["access"] == ADMIN_ACCESS
    status, started = admin_requests(setup.registry.url, headers=bearer(alice))
    assert status.status_code == 200 and status.json()["state"] in ("idle", "running")
    assert started.status_code in (202, 409)
    # bob's own rule (actions: []) decides before the rule for everyone.
    bob = setup.token(ADMIN_SCOPE, auth=("bob", "builder"))
    assert setup.claims(bob)["access"] == []
    for response in admin_requests(setup.registry.url, headers=bearer(bob)):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == admin_challenge(
            setup, "insufficient_scope")
        assert error_codes(response) == ["UNAUTHORIZED"]
    # The rule for everyone covers anonymous clients too.
    anonymous = setup.token(ADMIN_SCOPE)
    assert setup.claims(anonymous)["access"] == ADMIN_ACCESS


def test_repository_rights_do_not_reach_the_admin_api(tmp_path: Path) -> None:
    rules = [{"user": "alice", "repository": "*", "actions": ["*"]}]
    with run_issuer(tmp_path, {"rules": rules}, ADMIN) as setup:
        token = setup.token(ADMIN_SCOPE, "registry:catalog:*", "repository:x:pull",
                            auth=("alice", "wonderland"))
        granted = setup.claims(token)["access"]
        assert {"type": "registry", "name": "catalog", "actions": ["*"]} in granted
        assert all(entry["name"] != "admin" for entry in granted)
        for response in admin_requests(setup.registry.url, headers=bearer(token)):
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"] == admin_challenge(
                setup, "insufficient_scope")


def test_tokens_of_an_outside_issuer(setup: TokenSetup) -> None:
    """Only the access claim matters: `registry:admin` with `*`, nothing less."""
    url = setup.registry.url
    insufficient = {
        "pull on admin": [{"type": "registry", "name": "admin", "actions": ["pull"]}],
        "catalog": [{"type": "registry", "name": "catalog", "actions": ["*"]}],
        "repository named admin": repo_access("admin", "*"),
        "nothing": [],
    }
    for reason, access in insufficient.items():
        for response in admin_requests(url, headers=bearer(mint(setup.pair, access))):
            assert response.status_code == 401, reason
            assert response.headers["WWW-Authenticate"] == admin_challenge(
                setup, "insufficient_scope"), reason
    expired = mint(setup.pair, ADMIN_ACCESS, age=3600)
    for response in admin_requests(url, headers=bearer(expired)):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == admin_challenge(setup, "invalid_token")
    status, started = admin_requests(url, headers=bearer(mint(setup.pair, ADMIN_ACCESS)))
    assert status.status_code == 200
    assert started.status_code in (202, 409)


def test_admin_rules_are_checked_at_load(tmp_path: Path) -> None:
    pair = make_key_pair(tmp_path, "good", "rsa")
    token = {"realm": "https://r.example.com/auth/token", "service": SERVICE,
             "issuer": ISSUER, "rootcertbundle": str(pair.cert_path)}

    def issuer(*rules: dict[str, Any]) -> dict[str, Any]:
        return {"token": token, "issuer": {"key": str(pair.key_path), "rules": list(rules)}}

    loaded = load_auth(tmp_path, issuer({"user": "a", "registry": "admin", "actions": ["*"]}))
    assert loaded.token_issuer.rules[0].registry == "admin"
    for rule, key in (
            ({"user": "a", "registry": "catalog", "actions": ["*"]}, "rules[0].registry"),
            ({"user": "a", "registry": "admin", "actions": ["pull"]}, "rules[0].actions"),
            ({"user": "a", "registry": "admin", "repository": "*", "actions": ["*"]},
             "rules[0]:"),
            ({"user": "a", "actions": ["*"]}, "rules[0].repository")):
        with pytest.raises(ConfigError) as raised:
            load_auth(tmp_path, issuer(rule))
        assert key in str(raised.value), (rule, str(raised.value))


# -- the read-only switch ----------------------------------------------------------------


def read_only_requests(url: str, headers: dict[str, str] | None = None,
                       auth: tuple[str, str] | None = None) -> list[httpx.Response]:
    """GET (state) and POST (switch on) of /admin/readonly."""
    return [httpx.get(url + "/admin/readonly", headers=headers, auth=auth, timeout=60),
            httpx.post(url + "/admin/readonly", params={"enabled": "true"}, headers=headers,
                       auth=auth, timeout=60)]


def test_htpasswd_read_only_switch_needs_a_valid_user(secured: RunningRegistry) -> None:
    for auth in (None, ("alice", "wrong"), ("mallory", "wonderland")):
        for response in read_only_requests(secured.url, auth=auth):
            assert response.status_code == 401, (auth, response.request.method)
            assert error_codes(response) == ["UNAUTHORIZED"]
    state, switched = read_only_requests(secured.url, auth=("alice", "wonderland"))
    assert state.status_code == 200 and state.json()["enabled"] is False
    assert switched.status_code == 200, switched.text
    assert switched.json()["switched"]["by"] == "alice"
    pushed = httpx.post(secured.url + "/v2/some/repo/blobs/uploads/", auth=("alice", "wonderland"))
    assert pushed.status_code == 405 and error_codes(pushed) == ["UNSUPPORTED"]


def test_token_read_only_switch_needs_the_admin_scope(setup: TokenSetup) -> None:
    url = setup.registry.url
    bob = setup.token(ADMIN_SCOPE, auth=("bob", "builder"))  # no admin rights
    pusher = setup.token("repository:some/repo:pull,push", auth=("alice", "wonderland"))
    for token in (bob, pusher):
        for response in read_only_requests(url, headers=bearer(token)):
            assert response.status_code == 401, response.request.method
            assert response.headers["WWW-Authenticate"] == admin_challenge(
                setup, "insufficient_scope")
    assert httpx.post(url + "/v2/some/repo/blobs/uploads/",
                      headers=bearer(pusher)).status_code == 202
    alice = setup.token(ADMIN_SCOPE, auth=("alice", "wonderland"))
    state, switched = read_only_requests(url, headers=bearer(alice))
    assert state.status_code == 200 and state.json()["source"] == "config"
    assert switched.status_code == 200 and switched.json()["switched"]["by"] == "alice"
    refused = httpx.post(url + "/v2/some/repo/blobs/uploads/", headers=bearer(pusher))
    assert refused.status_code == 405 and error_codes(refused) == ["UNSUPPORTED"]
    off = httpx.post(url + "/admin/readonly", json={"enabled": False}, headers=bearer(alice))
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert httpx.post(url + "/v2/some/repo/blobs/uploads/",
                      headers=bearer(pusher)).status_code == 202
