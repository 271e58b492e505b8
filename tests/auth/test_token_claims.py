"""Time claims of bearer tokens must be JSON numbers: PyJWT reads a numeric string too, and
the registry then remembered such a token as never expiring."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.auth.test_token import challenge
from tests.support.oci import error_codes
from tests.support.tokens import (
    ISSUER,
    RULES,
    SERVICE,
    KeyPair,
    TokenSetup,
    bearer,
    repo_access,
    run_issuer,
)


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[TokenSetup]:
    # One worker, so that a token's second use finds what its first left in memory.
    with run_issuer(tmp_path, {"rules": RULES, "groups": {"ci": ["bob"]}},
                    {"http": {"workers": 1}}) as running:
        yield running


def signed(pair: KeyPair, **times: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "tester", "aud": SERVICE, "iat": now, "nbf": now,
              "exp": now + 300, "jti": uuid.uuid4().hex,
              "access": repo_access("x/y", "pull"), **times}
    return jwt.encode(claims, pair.key, algorithm=pair.algorithm)


def test_time_claims_that_are_not_numbers_are_refused(issuer: TokenSetup) -> None:
    now = int(time.time())
    url = issuer.registry.url + "/v2/x/y/tags/list"
    invalid = challenge(issuer, "repository:x/y:pull", "invalid_token")
    for claims in ({"exp": str(now + 300)}, {"exp": f"{now + 300}.5"}, {"exp": True},
                   {"nbf": str(now)}, {"nbf": False}, {"iat": str(now)}, {"iat": True}):
        response = httpx.get(url, headers=bearer(signed(issuer.pair, **claims)))
        assert response.status_code == 401, claims
        assert response.headers["WWW-Authenticate"] == invalid, claims
        assert error_codes(response) == ["UNAUTHORIZED"], claims
    # Numbers, whole or not, are fine.
    for claims in ({}, {"exp": now + 300.5, "nbf": now - 0.5, "iat": now - 0.5}):
        response = httpx.get(url, headers=bearer(signed(issuer.pair, **claims)))
        assert response.status_code == 404, claims  # allowed; the repository does not exist


def test_token_with_a_string_exp_is_not_remembered_past_it(issuer: TokenSetup) -> None:
    """The report's case: a string exp a moment away, used before and after it passes."""
    expires = int(time.time()) - 60 + 3  # inside the 60 s leeway for 3 s
    token = signed(issuer.pair, exp=str(expires))
    url = issuer.registry.url + "/v2/x/y/tags/list"
    first = httpx.get(url, headers=bearer(token)).status_code
    time.sleep(max(0.0, expires + 60 + 1 - time.time()))
    assert httpx.get(url, headers=bearer(token)).status_code == 401
    assert first == 401  # refused from the start
