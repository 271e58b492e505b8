"""The spec's grammar for repository names, tags and digests."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from dockyard.registry.errors import DigestInvalid, ManifestInvalid, NameInvalid

NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE = re.compile(rf"{NAME_COMPONENT}(?:/{NAME_COMPONENT})*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")

# distribution refuses repository names longer than this.
MAX_NAME_LENGTH = 255

# Algorithms we can verify, with the length of their hex encoding.
HASH_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
HEX_RE = re.compile(r"[a-f0-9]+")


def validate_name(name: str) -> str:
    if len(name) > MAX_NAME_LENGTH:
        raise NameInvalid(f"repository name must be at most {MAX_NAME_LENGTH} characters",
                          {"name": name[:300]})
    if not NAME_RE.fullmatch(name):
        raise NameInvalid("invalid repository name", {"name": name})
    return name


def is_name(text: str) -> bool:
    return len(text) <= MAX_NAME_LENGTH and NAME_RE.fullmatch(text) is not None


def is_tag(reference: str) -> bool:
    return TAG_RE.fullmatch(reference) is not None


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse and check a digest; unsupported or malformed ones are DIGEST_INVALID."""
        if not DIGEST_RE.fullmatch(text):
            raise DigestInvalid("invalid digest", {"digest": text[:200]})
        algorithm, _, encoded = text.partition(":")
        expected = HASH_HEX_LENGTHS.get(algorithm)
        if expected is None:
            raise DigestInvalid(f"unsupported digest algorithm {algorithm[:50]!r}",
                                {"digest": text[:200]})
        if len(encoded) != expected or not HEX_RE.fullmatch(encoded):
            raise DigestInvalid("invalid digest encoding", {"digest": text[:200]})
        return cls(algorithm, encoded)

    @classmethod
    def parse_in_manifest(cls, text: object) -> Digest:
        """Like `parse`, but a bad digest inside a manifest makes the manifest invalid."""
        if not isinstance(text, str):
            raise ManifestInvalid("descriptor digest must be a string")
        try:
            return cls.parse(text)
        except DigestInvalid as error:
            raise ManifestInvalid(f"invalid descriptor digest: {error.message}",
                                  {"digest": text[:200]}) from None

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())


def new_hasher(algorithm: str) -> hashlib._Hash:
    return hashlib.new(algorithm)
