"""The web UI behind the registry's own auth: htpasswd users log in to a session; with
dockyard's token issuer each user sees and may do only what the issuer's rules grant."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dockyard.auth.htpasswd import hash_password
from tests.support.images import sample_image
from tests.support.server import RunningRegistry, run_registry
from tests.support.tokens import ISSUER, PASSWORDS, SERVICE, TokenSetup, make_key_pair, run_issuer
from tests.ui.support import Visitor, push, text_of

UI = {"ui": {"enabled": True}}


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    tmp = tmp_path_factory.mktemp("ui-htpasswd")
    users = tmp / "htpasswd"
    users.write_text(f"admin:{hash_password('s3cret', rounds=4)}\n")
    config = {**UI, "auth": {"htpasswd": {"realm": "Registry", "path": str(users)},
                             "throttle": {"peraccount": 3}}}
    with run_registry(tmp, config=config) as registry:
        with httpx.Client(base_url=registry.url, auth=("admin", "s3cret")) as client:
            push(client, "private/app", "v1", sample_image("private"))
        yield registry


def test_htpasswd_asks_for_a_login_and_keeps_a_session(locked: RunningRegistry) -> None:
    with Visitor(locked.url) as visitor:
        first = visitor.get("/r/private/app")
        assert first.status_code == 303
        assert first.headers["location"] == "/ui/login?next=%2Fui%2Fr%2Fprivate%2Fapp"
        assert "private/app" not in visitor.get("/").text
        wrong = visitor.log_in("admin", "wrong")
        assert wrong.status_code == 401
        assert "Wrong user name or password." in text_of(wrong.text)
        right = visitor.log_in("admin", "s3cret")
        assert right.status_code == 303 and right.headers["location"] == "/ui/"
        cookie = right.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = text_of(visitor.page("/"))
        assert "private/app" in page and "admin" in page and "Log out" in page
        assert "Delete" in text_of(visitor.page("/r/private/app"))
        # Logging out ends the session: the old cookie gives a login page again.
        token = visitor.csrf("/")
        out = visitor.post("/logout", csrf=token)
        assert out.status_code == 303 and out.headers["location"] == "/ui/login"
        assert visitor.get("/").status_code == 303


def test_a_forged_or_foreign_cookie_is_no_session(locked: RunningRegistry) -> None:
    with Visitor(locked.url) as visitor:
        assert visitor.log_in("admin", "s3cret").status_code == 303
        cookie = visitor.client.cookies["dockyard_session"]
    payload, _, signature = cookie.rpartition(".")
    forged = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
    for value in (forged, "garbage", payload + ".", ""):
        response = httpx.get(locked.url + "/ui/", cookies={"dockyard_session": value})
        assert response.status_code == 303, value


def test_the_login_redirects_only_within_the_ui(locked: RunningRegistry) -> None:
    with Visitor(locked.url) as visitor:
        token = visitor.csrf("/login")
        for target in ("https://evil.example/", "//evil.example/ui/", "/elsewhere",
                       "/ui/\\evil"):
            response = visitor.post("/login", {"username": "admin", "password": "s3cret",
                                               "next": target}, token)
            assert response.headers["location"] == "/ui/", target
            token = visitor.csrf("/")  # a login starts a new session and token
        kept = visitor.post("/login", {"username": "admin", "password": "s3cret",
                                       "next": "/ui/r/private/app"}, token)
        assert kept.headers["location"] == "/ui/r/private/app"


def test_failed_logins_are_throttled_as_on_the_api(locked: RunningRegistry) -> None:
    with Visitor(locked.url) as visitor:
        statuses = [visitor.log_in("victim", "guess").status_code for _ in range(5)]
        assert statuses[:3] == [401, 401, 401]
        assert statuses[-1] == 429
        throttled = visitor.log_in("victim", "guess")
        assert "Too many failed logins" in text_of(throttled.text)
        assert int(throttled.headers["retry-after"]) > 0


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenSetup]:
    """dockyard as its own issuer: alice may do anything anywhere, carol only pull, the
    `ci` group push to team/*, anonymous pull public/*; bob has no rule of his own."""
    tmp = tmp_path_factory.mktemp("ui-issuer")
    rules = [
        {"user": "alice", "repository": "*", "actions": ["pull", "push", "delete"]},
        {"user": "alice", "registry": "admin", "actions": ["*"]},
        {"user": "carol", "repository": "team/*", "actions": ["pull"]},
        {"user": "*", "repository": "public/*", "actions": ["pull"]},
    ]
    with run_issuer(tmp, {"rules": rules}, UI) as setup:
        registry = setup.registry
        token = httpx.get(setup.realm, auth=("alice", PASSWORDS["alice"]), params={
            "service": SERVICE, "scope": [
                f"repository:{name}:push,pull" for name in ("team/a", "public/b", "secret/c")
            ]}).json()["token"]
        with httpx.Client(base_url=registry.url,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            for name in ("team/a", "public/b", "secret/c"):
                push(client, name, "v1", sample_image(name.replace("/", "-")))
        yield setup


def test_issuer_rules_decide_what_each_user_sees_and_may_do(issued: TokenSetup) -> None:
    url = issued.registry.url
    with Visitor(url) as anonymous:
        listing = text_of(anonymous.page("/"))
        assert "public/b" in listing and "team/a" not in listing and "secret/c" not in listing
        assert "1 in all" in listing
        anonymous.page("/r/secret/c", 404)
        assert "Delete" not in text_of(anonymous.page("/r/public/b"))
    with Visitor(url) as carol:
        assert carol.log_in("carol", PASSWORDS["carol"]).status_code == 303
        listing = text_of(carol.page("/"))
        assert "team/a" in listing and "public/b" in listing and "secret/c" not in listing
        carol.page("/r/secret/c/-/image/v1", 404)
        assert carol.get("/r/secret/c/-/blob/sha256:" + "0" * 64).status_code == 404
        repository = carol.page("/r/team/a")
        assert "Delete" not in text_of(repository)
        token = carol.csrf("/")
        refused = carol.post("/r/team/a/-/tag/v1/delete", csrf=token)
        assert refused.status_code == 403
        storage = text_of(carol.page("/storage"))
        assert "Collect garbage now" not in storage
        assert carol.post("/storage/gc", {"dryrun": "true"}, token).status_code == 403
    with Visitor(url) as alice:
        assert alice.log_in("alice", PASSWORDS["alice"]).status_code == 303
        listing = text_of(alice.page("/"))
        assert "3 in all" in listing
        assert "Delete tag" in text_of(alice.page("/r/secret/c"))
        assert "Collect garbage now" in text_of(alice.page("/storage"))
        token = alice.csrf("/")
        assert alice.post("/r/secret/c/-/tag/v1/delete", csrf=token).status_code == 303
        assert "no tags" in text_of(alice.page("/r/secret/c")).lower()


def test_an_outside_token_issuer_leaves_the_ui_closed(tmp_path: Path) -> None:
    """Tokens signed elsewhere: the UI has no passwords to check, so it shows nothing."""
    pair = make_key_pair(tmp_path, "outside", "rsa")
    config = {**UI, "auth": {"token": {"realm": "https://auth.example/token",
                                       "service": SERVICE, "issuer": ISSUER,
                                       "rootcertbundle": str(pair.cert_path)}}}
    with run_registry(tmp_path, config=config) as registry, Visitor(registry.url) as visitor:
        assert visitor.get("/").status_code == 303
        assert "no login" in text_of(visitor.page("/login", 404))
