"""The access a request needs, in the terms of Docker's token scopes
(`repository:<name>:pull,push,delete`, `registry:catalog:*`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Access:
    type: str  # "repository" or "registry"
    name: str
    actions: tuple[str, ...]

    @property
    def scope(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


def required_access(method: str, path_params: dict[str, str], catalog: bool = False
                    ) -> list[Access]:
    """What a request must be allowed, from its method and route (an empty list: only
    that the client is authenticated, as for `GET /v2/`)."""
    if catalog:
        return [Access("registry", "catalog", ("*",))]
    name = path_params.get("name")
    if name is None:
        return []
    if method in ("GET", "HEAD"):
        return [Access("repository", name, ("pull",))]
    if method == "DELETE":
        return [Access("repository", name, ("delete",))]
    # Writes; pushes also read (HEAD of blobs, mounts), so they ask for both, as docker does.
    return [Access("repository", name, ("pull", "push"))]
