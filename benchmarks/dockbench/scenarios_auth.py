"""The auth scenario: manifest GET req/s against the plain server and, back to back, against
a second server of the same kind guarded by htpasswd basic auth or by bearer tokens
(`auth.token`), with the credentials on every request."""

from __future__ import annotations

import base64
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .clients import Client, run_wrk
from .common import MANIFEST_ACCEPT, BenchError
from .scenarios_metadata import MANIFEST_PATH, MANIFEST_REPO
from .servers import Server
from .settings import Settings
from .tokens import TokenAuth, bearer, new_key, sign

AUTH_USER = "bench"
AUTH_PASSWORD = "bench-password"


@dataclass(frozen=True)
class AuthKind:
    """One way of guarding a registry, and how the scenario drives it."""

    group: str  # the measured() group: "auth" (basic) or "auth_bearer"
    prefix: str  # of its metrics: <prefix>_off_rps, _on_rps, _on_p99, _cost_pct
    label: str
    headers: dict[str, str]  # what wrk sends on every request
    setup_headers: dict[str, str]  # allowed to push the image the scenario reads
    refused: dict[str, dict[str, str]]  # untimed: each of these must get 401
    # What the guarded server's config names: an htpasswd file or the token signer.
    htpasswd: Path | None = None
    token: TokenAuth | None = None


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def basic_header() -> dict[str, str]:
    return basic(AUTH_USER, AUTH_PASSWORD)


def basic_kind(htpasswd: Path) -> AuthKind:
    return AuthKind("auth", "auth", "basic auth", basic_header(), basic_header(), {
        "no credentials": {},
        "a wrong password": basic(AUTH_USER, "wrong"),
    }, htpasswd=htpasswd)


def bearer_kind(tokens: TokenAuth) -> AuthKind:
    """wrk sends a token granting pull on the benchmark repository; the set-up push uses
    one granting pull and push."""
    return AuthKind(
        "auth_bearer", "bearer", "bearer token",
        bearer(tokens.token(MANIFEST_REPO, "pull")),
        bearer(tokens.token(MANIFEST_REPO, "pull", "push")),
        {
            "no token": {},
            "a token of an untrusted key": bearer(sign(new_key(), MANIFEST_REPO, ("pull",))),
            "a token for another repository": bearer(tokens.token("bench/other", "pull")),
            "a token for another service": bearer(
                sign(tokens.key, MANIFEST_REPO, ("pull",), audience="elsewhere")),
        },
        token=tokens,
    )


def write_htpasswd(path: Path) -> str:
    """A bcrypt htpasswd entry, cost 5 (the default of `htpasswd -B`). Returns how."""
    if shutil.which("htpasswd"):
        done = subprocess.run(
            ["htpasswd", "-nbB", "-C", "5", AUTH_USER, AUTH_PASSWORD],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode == 0 and done.stdout.startswith(f"{AUTH_USER}:"):
            path.write_text(done.stdout.strip() + "\n")
            return "htpasswd -B -C 5"
    import bcrypt

    hashed = bcrypt.hashpw(AUTH_PASSWORD.encode(), bcrypt.gensalt(5)).decode()
    path.write_text(f"{AUTH_USER}:{hashed}\n")
    return "Python bcrypt, cost 5"


def check_auth(server: Server, kind: AuthKind) -> str:
    """Untimed: every refused case gets 401, the credentials wrk sends get 200."""
    cases = [(what, headers, 401) for what, headers in kind.refused.items()]
    for what, headers, wanted in [*cases, ("the right credentials", kind.headers, 200)]:
        client = Client(server.port, timeout=30, headers=headers)
        try:
            got = client.request("GET", MANIFEST_PATH, headers={"Accept": MANIFEST_ACCEPT})
        finally:
            client.close()
        if got.status != wanted:
            raise BenchError(f"{kind.label} check, {what}: HTTP {got.status}, expected {wanted}")
    return f"{kind.label}: 401 with {', '.join(kind.refused)}; 200 with the right one"


def auth_pair(
    plain: Server, guarded: Server, kind: AuthKind, settings: Settings, workdir: Path
) -> dict[str, float]:
    """Manifest GET req/s without auth (the plain server) and with `kind`, back to back."""
    off = run_wrk(
        plain.base + MANIFEST_PATH,
        {"Accept": MANIFEST_ACCEPT},
        workdir / f"{kind.prefix}-off.lua",
        settings.wrk_duration,
        settings.wrk_threads,
        settings.wrk_connections,
    )
    on = run_wrk(
        guarded.base + MANIFEST_PATH,
        {"Accept": MANIFEST_ACCEPT, **kind.headers},
        workdir / f"{kind.prefix}-on.lua",
        settings.wrk_duration,
        settings.wrk_threads,
        settings.wrk_connections,
    )
    return {
        f"{kind.prefix}_off_rps": off["rps"],
        f"{kind.prefix}_on_rps": on["rps"],
        f"{kind.prefix}_on_p99": on["p99_ms"],
        f"{kind.prefix}_cost_pct": (1 - on["rps"] / off["rps"]) * 100 if off["rps"] else 0.0,
    }
