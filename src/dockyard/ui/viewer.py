"""What the person browsing may see and do, under the registry's own auth settings.

- No auth: everyone may do everything the registry allows (deletes only where enabled).
- `auth.htpasswd`: a user must log in; every user may do everything, as on the API.
- `auth.token` with dockyard's issuer: users log in with the issuer's passwords, and its
  access rules decide per repository (anonymous visitors get what anonymous may pull).
- `auth.token` with an outside issuer: the UI cannot check passwords and shows nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from dockyard.auth.policy import AccessPolicy


class AuthMode(Enum):
    OPEN = "open"
    HTPASSWD = "htpasswd"
    ISSUER = "issuer"
    OUTSIDE = "outside"


@dataclass(frozen=True, slots=True)
class Viewer:
    user: str | None
    mode: AuthMode
    policy: AccessPolicy | None = None
    deletes_enabled: bool = True  # storage.delete.enabled, and the store is writable
    read_only: bool = False  # read-only maintenance mode: only dry-run collections

    @property
    def can_log_in(self) -> bool:
        return self.mode in (AuthMode.HTPASSWD, AuthMode.ISSUER)

    @property
    def must_log_in(self) -> bool:
        return self.user is None and self.mode in (AuthMode.HTPASSWD, AuthMode.OUTSIDE)

    def _actions(self, repository: str) -> frozenset[str]:
        if self.mode is AuthMode.OPEN or (self.mode is AuthMode.HTPASSWD and self.user):
            return frozenset({"*"})
        if self.mode is AuthMode.ISSUER and self.policy is not None:
            return self.policy.allowed(self.user, repository)
        return frozenset()

    def may_pull(self, repository: str) -> bool:
        actions = self._actions(repository)
        return "*" in actions or "pull" in actions

    def may_delete(self, repository: str) -> bool:
        actions = self._actions(repository)
        return self.deletes_enabled and ("*" in actions or "delete" in actions)

    @property
    def restricted(self) -> bool:
        """Whether some repositories may be hidden from this person (listings filter)."""
        return self.mode is AuthMode.ISSUER

    @property
    def is_admin(self) -> bool:
        """May start garbage collection (the admin API's `registry:admin:*`)."""
        if self.mode is AuthMode.OPEN or (self.mode is AuthMode.HTPASSWD and self.user):
            return True
        if self.mode is AuthMode.ISSUER and self.policy is not None:
            allowed = self.policy.registry_allowed(self.user, "admin")
            return bool(allowed)
        return False
