"""The interface of an authentication method."""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass

from dockyard.auth.access import Access, Grants, grants_allow


@dataclass(frozen=True, slots=True)
class Identity:
    user: str
    # What the credentials allow beyond the request they came with (a mount's `from`
    # repository); None allows everything, as every htpasswd user may do everything.
    granted: Grants | None = None

    def allows(self, access: Access) -> bool:
        return self.granted is None or grants_allow(self.granted, access)


CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def quoted(value: str) -> str:
    """`value` as an HTTP quoted-string for a challenge's parameter: quotes and
    backslashes escaped, control characters (which no header may carry) dropped."""
    escaped = CONTROL_CHARACTERS.sub("", value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class AuthDenied(Exception):
    """Credentials missing or wrong (401, with a challenge) or not enough (403)."""

    def __init__(self, message: str, challenge: str | None, forbidden: bool = False,
                 throttled: bool = False, retry_after: int = 60) -> None:
        super().__init__(message)
        self.message = message
        self.challenge = challenge
        self.forbidden = forbidden
        self.throttled = throttled
        self.retry_after = retry_after  # seconds, for a throttled client


class Authenticator(abc.ABC):
    @abc.abstractmethod
    async def authenticate(self, authorization: str | None, client: str, access: list[Access]
                           ) -> Identity:
        """The identity behind an Authorization header, allowed `access`; else AuthDenied."""

    async def aclose(self) -> None:  # noqa: B027 (most hold nothing open)
        """Give back connections it holds, in the event loop that used them."""
