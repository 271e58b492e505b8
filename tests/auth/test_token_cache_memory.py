"""The memory of verified bearer tokens is bounded by its size in bytes, not by a count: a
token granting hundreds of scopes costs hundreds of KiB once decoded, and each worker used to
keep 4096 of them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.support.tokens import ISSUER, RULES, SERVICE, KeyPair, TokenSetup, bearer, run_issuer

SCOPES = 600
WARM_UP = 20
TOKENS = 400
# Tokens small enough to be remembered, but many: they fill the byte budget.
MIDDLING_SCOPES = 60
MIDDLING_TOKENS = 2000
# Before, 400 tokens of 600 scopes kept about 120 MiB in the worker, and 2000 of 60 about
# 60 MiB; the bound is a few MiB, and the margin is for a busy machine's allocator.
MAX_GROWTH_KIB = 24 * 1024


@pytest.fixture
def issuer(tmp_path: Path) -> Iterator[TokenSetup]:
    # One worker, so that every token lands in the same process's memory.
    with run_issuer(tmp_path, {"rules": RULES, "groups": {"ci": ["bob"]}},
                    {"http": {"workers": 1}}) as running:
        yield running


def wide_token(pair: KeyPair, scopes: int = SCOPES) -> str:
    """A valid token granting pull on `scopes` repositories, as an anonymous one may."""
    now = int(time.time())
    access = [{"type": "repository", "name": f"public/repository-{n:05d}", "actions": ["pull"]}
              for n in range(scopes)]
    return jwt.encode({"iss": ISSUER, "sub": "", "aud": SERVICE, "iat": now, "nbf": now,
                       "exp": now + 300, "jti": uuid.uuid4().hex, "access": access},
                      pair.key, algorithm=pair.algorithm)


def tree_pids(pid: int) -> list[int]:
    """A process and all its descendants."""
    pids = [pid]
    for parent in pids:
        for task in Path(f"/proc/{parent}/task").iterdir():
            children = (task / "children").read_text().split()
            pids.extend(int(child) for child in children)
    return pids


def rss_kib(pid: int) -> int:
    """VmRSS summed over the server and its workers."""
    total = 0
    for member in tree_pids(pid):
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def send_tokens(issuer: TokenSetup, count: int, scopes: int = SCOPES) -> None:
    with issuer.registry.client() as client:
        for _ in range(count):
            response = client.get("/v2/", headers=bearer(wide_token(issuer.pair, scopes)))
            assert response.status_code == 200, response.text


def test_memory_of_verified_tokens_is_bounded(issuer: TokenSetup) -> None:
    send_tokens(issuer, WARM_UP)
    before = rss_kib(issuer.registry.process.pid)
    send_tokens(issuer, TOKENS)
    after = rss_kib(issuer.registry.process.pid)
    print(f"server RSS {before} KiB -> {after} KiB after {TOKENS} tokens of {SCOPES} scopes")
    assert after - before < MAX_GROWTH_KIB, (before, after)
    # Still served; a wide token is simply verified again on each use.
    token = wide_token(issuer.pair)
    for _ in range(3):
        assert httpx.get(issuer.registry.url + "/v2/", headers=bearer(token)).status_code == 200


def test_memory_of_many_remembered_tokens_is_bounded(issuer: TokenSetup) -> None:
    send_tokens(issuer, WARM_UP, MIDDLING_SCOPES)
    before = rss_kib(issuer.registry.process.pid)
    send_tokens(issuer, MIDDLING_TOKENS, MIDDLING_SCOPES)
    after = rss_kib(issuer.registry.process.pid)
    print(f"server RSS {before} KiB -> {after} KiB after {MIDDLING_TOKENS} tokens of "
          f"{MIDDLING_SCOPES} scopes")
    assert after - before < MAX_GROWTH_KIB, (before, after)
