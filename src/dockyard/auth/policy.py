"""Who may do what, for dockyard's token issuer: rules matching users (or groups) and
repository name patterns, or registry-wide resources (the admin API), to actions, and the
parsing of Docker token scopes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from dockyard.auth.access import Access

ACTIONS = ("pull", "push", "delete", "*")
EVERYONE = "*"  # as a rule's user: every user, and anonymous clients too
# Registry-wide resources a rule may name instead of a repository (scope `registry:admin:*`:
# the admin API). The catalog is not one: it follows the rules for `repository: "*"`.
REGISTRY_RESOURCES = ("admin",)
REGISTRY_ACTIONS = ("*",)


class ScopeError(ValueError):
    """A scope parameter that is not `type:name:actions`."""


@dataclass(frozen=True)
class AccessRule:
    """`user` (a name, or "*" for everyone including anonymous) or `group` may do
    `actions` on repositories whose name matches `repository` (fnmatch: `*`, `?`, `[...]`;
    `*` also matches `/`), or, in a rule with `registry` instead, on that registry-wide
    resource."""

    repository: str  # "" in a rule for a registry-wide resource
    actions: tuple[str, ...]
    user: str | None = None
    group: str | None = None
    registry: str | None = None  # "admin": the rule is about the admin API


class AccessPolicy:
    """For each repository the first rule that applies to the user and matches the name
    decides, alone, what is allowed (so order rules from specific to general; a rule with
    `actions: []` denies). The catalog (`registry:catalog:*`), which names every repository,
    is allowed to users whose first rule for `repository: "*"` allows something. A
    registry-wide resource (`registry: admin`) is decided by the first rule naming it that
    applies to the user; without one it is refused."""

    def __init__(self, rules: Sequence[AccessRule], groups: Mapping[str, Iterable[str]]
                 ) -> None:
        self.rules = tuple(rules)
        self.groups = {name: frozenset(members) for name, members in groups.items()}

    def applies(self, rule: AccessRule, user: str | None) -> bool:
        if rule.user is not None:
            return rule.user == EVERYONE or (user is not None and rule.user == user)
        if rule.group is not None and user is not None:
            return user in self.groups.get(rule.group, frozenset())
        return False

    def allowed(self, user: str | None, repository: str) -> frozenset[str]:
        """The actions `user` (None: anonymous) may do on `repository`."""
        for rule in self.rules:
            if rule.registry is None and self.applies(rule, user) \
                    and fnmatchcase(repository, rule.repository):
                return frozenset(rule.actions)
        return frozenset()

    def catalog_allowed(self, user: str | None) -> bool:
        for rule in self.rules:
            if rule.registry is None and rule.repository == "*" and self.applies(rule, user):
                return bool(rule.actions)
        return False

    def registry_allowed(self, user: str | None, resource: str) -> frozenset[str]:
        """The actions `user` may do on a registry-wide resource such as `admin`."""
        for rule in self.rules:
            if rule.registry == resource and self.applies(rule, user):
                return frozenset(rule.actions)
        return frozenset()

    def grant(self, user: str | None, requested: Iterable[Access]) -> list[Access]:
        """What of `requested` to put in a token: per resource, the requested actions that
        are allowed (resources with none left are left out)."""
        actions_by_resource: dict[tuple[str, str], list[str]] = {}
        for access in requested:
            actions = actions_by_resource.setdefault((access.type, access.name), [])
            actions.extend(action for action in access.actions if action not in actions)
        granted = []
        for (kind, name), wanted in actions_by_resource.items():
            if kind == "repository":
                allowed = self.allowed(user, name)
            elif kind == "registry" and name == "catalog":
                allowed = frozenset({"*"}) if self.catalog_allowed(user) else frozenset()
            elif kind == "registry" and name in REGISTRY_RESOURCES:
                allowed = self.registry_allowed(user, name)
            else:
                allowed = frozenset()
            given = tuple(action for action in wanted if "*" in allowed or action in allowed)
            if given:
                granted.append(Access(kind, name, given))
        return granted


def parse_scopes(values: Iterable[str]) -> list[Access]:
    """Docker token scopes, `repository:team/app:pull,push` or `registry:catalog:*`; each
    value may hold several, separated by spaces (the OAuth 2 form). A resource class,
    `repository(plugin)`, is dropped; the name may contain `:` (a registry host's port)."""
    scopes = []
    for value in values:
        for item in value.split():
            kind, sep, rest = item.partition(":")
            name, sep2, actions = rest.rpartition(":")
            if not sep or not sep2 or not kind or not name:
                raise ScopeError(f"invalid scope {item[:200]!r}: expected type:name:actions")
            kind = kind.split("(", 1)[0]
            wanted = tuple(action for action in actions.split(",") if action)
            scopes.append(Access(kind, name, wanted))
    return scopes
