"""Bearer tokens for the auth scenario, as an authorization server following the Docker
registry token specification issues them: an RSA key, its self-signed certificate (the
registries' `auth.token.rootcertbundle`), and long-lived RS256 JWTs whose `kid` is the key's
libtrust id, which distribution 2.8 looks signing keys up by."""

from __future__ import annotations

import base64
import datetime
import hashlib
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

SERVICE = "dockbench"
ISSUER = "dockbench-issuer"
# Never contacted: the benchmark hands wrk its token directly.
REALM = "https://token.dockbench.invalid/token"
LIFETIME = 24 * 3600  # seconds; outlasts any run


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def libtrust_key_id(key: rsa.RSAPublicKey) -> str:
    """docker/libtrust's key id: SHA-256 of the DER SubjectPublicKeyInfo, its first 240 bits
    in base32, in groups of four separated by colons."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    text = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(text[i:i + 4] for i in range(0, len(text), 4))


def sign(key: rsa.RSAPrivateKey, repository: str, actions: tuple[str, ...],
         audience: str = SERVICE) -> str:
    """A JWT granting `actions` on `repository`, valid for LIFETIME."""
    now = int(time.time())
    claims = {
        "iss": ISSUER, "sub": "bench", "aud": audience, "iat": now, "nbf": now - 60,
        "exp": now + LIFETIME, "jti": secrets.token_hex(8),
        "access": [{"type": "repository", "name": repository, "actions": list(actions)}],
    }
    return jwt.encode(claims, key, algorithm="RS256",
                      headers={"kid": libtrust_key_id(key.public_key())})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class TokenAuth:
    """The signing key and the certificate both registries trust."""

    key: rsa.RSAPrivateKey
    certificate: Path

    def config_yaml(self) -> str:
        return (
            "auth:\n"
            "  token:\n"
            f"    realm: {REALM}\n"
            f"    service: {SERVICE}\n"
            f"    issuer: {ISSUER}\n"
            f"    rootcertbundle: {self.certificate}\n"
        )

    def token(self, repository: str, *actions: str) -> str:
        return sign(self.key, repository, actions)


def make_token_auth(directory: Path) -> TokenAuth:
    """A fresh key and its self-signed certificate, written as PEM into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    key = new_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockbench token signer")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=30))
                   .sign(key, hashes.SHA256()))
    path = directory / "token-signer.crt"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return TokenAuth(key, path)
