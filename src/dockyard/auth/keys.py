"""Keys for bearer tokens: the public keys that verify them (from a certificate bundle, as
distribution's `auth.token.rootcertbundle`, or a JWKS file) and the private key that signs
them (dockyard's own issuer)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
MIN_RSA_BITS = 2048


class KeyFileError(ValueError):
    """A key or certificate file that cannot be used; the message says why."""


@dataclass(frozen=True)
class TrustedKey:
    """A public key that may sign tokens, the key ids it is known by, and its algorithms."""

    key: PublicKey
    key_ids: frozenset[str]
    algorithms: tuple[str, ...]
    origin: str  # the file it came from, for messages


def algorithms_for(key: PublicKey) -> tuple[str, ...]:
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    algorithm = EC_ALGORITHMS.get(key.curve.name)
    return (algorithm,) if algorithm else ()


def signing_algorithm(key: PrivateKey) -> str:
    """RS256 for RSA keys; ES256/ES384/ES512 for EC keys by curve."""
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    return EC_ALGORITHMS[key.curve.name]


def public_der(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def libtrust_key_id(key: PublicKey) -> str:
    """The key id docker's libtrust gives a key (and distribution looks up `kid` by): the
    SHA-256 of its DER SubjectPublicKeyInfo, first 240 bits, base32, in groups of four."""
    digest = hashlib.sha256(public_der(key)).digest()[:30]
    text = base64.b32encode(digest).decode().rstrip("=")
    return ":".join(text[i:i + 4] for i in range(0, len(text), 4))


def _checked(key: object, origin: str) -> PublicKey:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise KeyFileError(f"{origin}: RSA key of {key.key_size} bits is too small "
                            f"(at least {MIN_RSA_BITS})")
        return key
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_ALGORITHMS:
            raise KeyFileError(f"{origin}: unsupported elliptic curve {key.curve.name} "
                            "(P-256, P-384 or P-521)")
        return key
    raise KeyFileError(f"{origin}: unsupported key type {type(key).__name__} (RSA or EC)")


def _trusted(key: PublicKey, origin: str, extra_ids: Iterable[str] = ()) -> TrustedKey:
    ids = {libtrust_key_id(key), *extra_ids}
    return TrustedKey(key, frozenset(ids), algorithms_for(key), origin)


def load_certificate_bundle(path: str) -> list[TrustedKey]:
    """The public keys of every certificate in a PEM bundle (validity dates are not checked:
    the certificates only carry keys, as in distribution)."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error.strerror}") from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise KeyFileError(f"{path}: no PEM certificates found") from None
    return [_trusted(_checked(certificate.public_key(), path), path)
            for certificate in certificates]


def load_jwks(path: str) -> list[TrustedKey]:
    """The RSA and EC keys of a JSON Web Key Set file (`{"keys": [...]}`)."""
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error.strerror}") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise KeyFileError(f"{path}: not a JSON file: {error}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise KeyFileError(f'{path}: expected a JWKS document {{"keys": [...]}} with keys')
    keys = []
    for number, entry in enumerate(entries):
        origin = f"{path} (key {number})"
        if not isinstance(entry, dict):
            raise KeyFileError(f"{origin}: expected a JSON object")
        if entry.get("use", "sig") != "sig":
            continue
        try:
            jwk = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as error:
            raise KeyFileError(f"{origin}: {error}") from None
        if not isinstance(jwk.key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
            raise KeyFileError(f"{origin}: a public RSA or EC key is required")
        key = _checked(jwk.key, origin)
        keys.append(_trusted(key, origin, [jwk.key_id] if jwk.key_id else []))
    if not keys:
        raise KeyFileError(f"{path}: no signing keys")
    return keys


def load_private_key(path: str) -> PrivateKey:
    """A PEM private key (RSA of 2048 bits or more, or EC P-256/P-384/P-521), unencrypted."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise KeyFileError(f"cannot read {path}: {error.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"{path}: not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"{path}: unsupported key type (RSA or EC)")
    _checked(key.public_key(), path)
    return key


def load_trusted_keys(rootcertbundle: str | None, jwks: str | None,
                      own_key: PrivateKey | None = None) -> list[TrustedKey]:
    """Every key that may sign tokens: the bundle's and the JWKS's, and without either, the
    public half of dockyard's own signing key."""
    keys: list[TrustedKey] = []
    if rootcertbundle:
        keys += load_certificate_bundle(rootcertbundle)
    if jwks:
        keys += load_jwks(jwks)
    if not keys and own_key is not None:
        keys.append(_trusted(own_key.public_key(), "auth.issuer.key"))
    return keys


def trusts(keys: Iterable[TrustedKey], key: PrivateKey) -> bool:
    """Whether tokens signed with `key` verify with one of `keys`."""
    der = public_der(key.public_key())
    return any(public_der(trusted.key) == der for trusted in keys)
