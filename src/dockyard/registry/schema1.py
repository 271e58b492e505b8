"""Serving Docker schema 1 manifests that older registries left in a store.

distribution keeps only the canonical (unsigned) schema 1 payload and signs it again, with a
key of its own, whenever it serves it: clients such as dockerd refuse schema 1 without a
signature. dockyard does the same, producing libtrust's "pretty JWS" form, so such images stay
pullable. The digest stays that of the canonical payload, which is what clients check.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from functools import lru_cache

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@lru_cache(maxsize=1)
def _signing_key() -> ec.EllipticCurvePrivateKey:
    # Like distribution without compatibility.schema1.signingkeyfile: a key per process.
    return ec.generate_private_key(ec.SECP256R1())


def _key_id(public: ec.EllipticCurvePublicKey) -> str:
    """libtrust's key ID: base32 of the first 240 bits of the SPKI's sha256, in 4s."""
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i:i + 4] for i in range(0, len(encoded), 4))


def _indent_of(payload: bytes) -> str:
    if not payload.startswith(b"{\n"):
        return ""
    line = payload[2:].split(b"\n", 1)[0]
    return line[: len(line) - len(line.lstrip(b" \t"))].decode()


def needs_signature(payload: bytes) -> bool:
    try:
        document = json.loads(payload)
    except ValueError:
        return False
    return (isinstance(document, dict) and document.get("schemaVersion") == 1
            and not document.get("signatures"))


def sign(payload: bytes) -> bytes:
    """The payload as a signed pretty-JWS schema 1 manifest."""
    stripped = payload.rstrip()
    if not stripped.endswith(b"}"):
        raise ValueError("schema 1 payload must be a JSON object")
    body = stripped[:-1].rstrip()
    format_length = len(body)
    format_tail = payload[format_length:]
    protected = _b64url(json.dumps({
        "formatLength": format_length,
        "formatTail": _b64url(format_tail),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }).encode())
    key = _signing_key()
    signing_input = f"{protected}.{_b64url(payload)}".encode()
    r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
    numbers = key.public_key().public_numbers()
    signature = {
        "header": {
            "jwk": {"crv": "P-256", "kid": _key_id(key.public_key()), "kty": "EC",
                    "x": _b64url(numbers.x.to_bytes(32, "big")),
                    "y": _b64url(numbers.y.to_bytes(32, "big"))},
            "alg": "ES256",
        },
        "signature": _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
        "protected": protected,
    }
    indent = _indent_of(payload)
    if indent:
        listed = json.dumps([signature], indent=len(indent)).replace("\n", "\n" + indent)
        tail = f',\n{indent}"signatures": {listed}\n}}'
    else:
        tail = f',"signatures":{json.dumps([signature], separators=(",", ":"))}}}'
    return body + tail.encode()
