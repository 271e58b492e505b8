"""Token authentication for tests: dockyard as its own token issuer (auth.issuer), signing
keys made with `cryptography`, and tokens signed here as an outside issuer would."""

from __future__ import annotations

import datetime
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from dockyard.auth.htpasswd import hash_password
from tests.support.server import RunningRegistry, free_port, run_registry

SERVICE = "dockyard-test"
ISSUER = "dockyard-test-issuer"
PASSWORDS = {"alice": "wonderland", "bob": "builder", "carol": "reader"}
RULES = [
    {"user": "alice", "repository": "*", "actions": ["pull", "push", "delete"]},
    {"group": "ci", "repository": "team/*", "actions": ["pull", "push"]},
    {"user": "carol", "repository": "*", "actions": ["pull"]},
    {"user": "*", "repository": "public/*", "actions": ["pull"]},
]

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class KeyPair:
    key: PrivateKey
    key_path: Path
    cert_path: Path
    algorithm: str


def make_key_pair(directory: Path, name: str, kind: str = "rsa") -> KeyPair:
    """A private key and a self-signed certificate for it, as PEM files."""
    key: PrivateKey
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        algorithm = "RS256"
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        algorithm = "ES256"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} token signer")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .sign(key, hashes.SHA256()))
    key_path = directory / f"{name}.key"
    cert_path = directory / f"{name}.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return KeyPair(key, key_path, cert_path, algorithm)


def mint(pair: KeyPair, access: list[dict[str, Any]], *, issuer: str = ISSUER,
         audience: str | list[str] = SERVICE, subject: str = "tester",
         lifetime: int = 300, age: int = 0, kid: str | None = None) -> str:
    """A token as an external authorization server would sign it."""
    issued = int(time.time()) - age
    claims = {"iss": issuer, "sub": subject, "aud": audience, "iat": issued,
              "nbf": issued, "exp": issued + lifetime, "jti": uuid.uuid4().hex,
              "access": access}
    headers = {"kid": kid} if kid else None
    return jwt.encode(claims, pair.key, algorithm=pair.algorithm, headers=headers)


def repo_access(name: str, *actions: str) -> list[dict[str, Any]]:
    return [{"type": "repository", "name": name, "actions": list(actions)}]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class TokenSetup:
    """A running dockyard that issues tokens at `realm`, signed with `pair`."""

    registry: RunningRegistry
    pair: KeyPair
    realm: str

    def token_response(self, *scopes: str, auth: tuple[str, str] | None = None,
                       service: str | None = SERVICE, **params: str) -> httpx.Response:
        query: list[tuple[str, str]] = [("scope", scope) for scope in scopes]
        if service is not None:
            query.append(("service", service))
        query += list(params.items())
        return httpx.get(self.registry.url + "/auth/token", params=query, auth=auth,
                         timeout=60)

    def token(self, *scopes: str, auth: tuple[str, str] | None = None) -> str:
        response = self.token_response(*scopes, auth=auth)
        assert response.status_code == 200, response.text
        return str(response.json()["token"])

    def claims(self, token: str) -> dict[str, Any]:
        """Claims of a token, checked with the certificate the registry trusts."""
        certificate = x509.load_pem_x509_certificate(self.pair.cert_path.read_bytes())
        return dict(jwt.decode(token, certificate.public_key(),  # type: ignore[arg-type]
                               algorithms=[self.pair.algorithm], audience=SERVICE,
                               issuer=ISSUER))

    def token_config(self) -> dict[str, Any]:
        """The `auth` section of a registry (dockyard or distribution) that takes this
        issuer's tokens."""
        return {"token": {"realm": self.realm, "service": SERVICE, "issuer": ISSUER,
                          "rootcertbundle": str(self.pair.cert_path)}}


@contextmanager
def run_with_realm(tmp_path: Path, auth: Callable[[str], dict[str, Any]],
                   config: dict[str, Any] | None = None) -> Iterator[RunningRegistry]:
    """run_registry with `auth(url)` as its auth section (beside `config`): the realm names
    the registry's own URL, so the port is chosen first."""
    port = free_port()
    with run_registry(tmp_path, config={**(config or {}),
                                        "auth": auth(f"http://127.0.0.1:{port}")},
                      port=port) as running:
        yield running


def write_users(path: Path) -> Path:
    """An htpasswd file (bcrypt) of the users of PASSWORDS."""
    path.write_text("".join(f"{user}:{hash_password(password, rounds=4)}\n"
                            for user, password in PASSWORDS.items()))
    return path


@contextmanager
def run_issuer(tmp_path: Path, issuer: dict[str, Any],
               config: dict[str, Any] | None = None) -> Iterator[TokenSetup]:
    """A dockyard that is its own token issuer (RSA key, self-signed certificate, the users of
    PASSWORDS); `issuer` adds to its auth.issuer section, `config` to the rest."""
    pair = make_key_pair(tmp_path, "issuer", "rsa")
    users = write_users(tmp_path / "htpasswd")

    def auth(url: str) -> dict[str, Any]:
        return {
            "token": {"realm": url + "/auth/token", "service": SERVICE, "issuer": ISSUER,
                      "rootcertbundle": str(pair.cert_path)},
            "issuer": {"key": str(pair.key_path), "htpasswd": str(users), **issuer},
        }

    with run_with_realm(tmp_path, auth, config) as running:
        yield TokenSetup(running, pair, running.url + "/auth/token")
