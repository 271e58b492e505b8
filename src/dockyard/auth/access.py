"""The access a request needs, in the terms of Docker's token scopes
(`repository:<name>:pull,push,delete`, `registry:catalog:*`, `registry:admin:*`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# What credentials grant: the actions allowed per (type, name), `*` meaning every action.
Grants = Mapping[tuple[str, str], frozenset[str]]


@dataclass(frozen=True, slots=True)
class Access:
    type: str  # "repository" or "registry"
    name: str
    actions: tuple[str, ...]

    @property
    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def required_access(method: str, path_params: dict[str, str], resource: str | None = None
                    ) -> list[Access]:
    """What a request must be allowed, from its method and route (an empty list: only
    that the client is authenticated, as for `GET /v2/`). `resource` names a registry-wide
    resource the route stands for (`catalog`, `admin`), which needs `registry:<resource>:*`."""
    if resource is not None:
        return [Access("registry", resource, ("*",))]
    name = path_params.get("name")
    if name is None:
        return []
    if method in ("GET", "HEAD"):
        return [Access("repository", name, ("pull",))]
    if method == "DELETE":
        return [Access("repository", name, ("delete",))]
    # Writes; pushes also read (HEAD of blobs, mounts), so they ask for both, as docker does.
    return [Access("repository", name, ("pull", "push"))]


def grants_allow(granted: Grants, access: Access) -> bool:
    actions = granted.get((access.type, access.name), frozenset())
    return "*" in actions or all(action in actions for action in access.actions)
