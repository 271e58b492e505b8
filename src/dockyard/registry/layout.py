"""Where things live in a store: the same paths distribution 2.x uses, so either can serve it.

    /docker/registry/v2/blobs/<alg>/<hex[:2]>/<hex>/data
    /docker/registry/v2/repositories/<name>/_layers/<alg>/<hex>/link
    /docker/registry/v2/repositories/<name>/_manifests/revisions/<alg>/<hex>/link
    /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link
    /docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link
    /docker/registry/v2/repositories/<name>/_uploads/<uuid>/{data,startedat}
"""

from __future__ import annotations

from dockyard.registry.reference import Digest

ROOT = "/docker/registry/v2"
BLOBS = f"{ROOT}/blobs"
REPOSITORIES = f"{ROOT}/repositories"


def blob_dir(digest: Digest) -> str:
    return f"{BLOBS}/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def blob_data(digest: Digest) -> str:
    return f"{blob_dir(digest)}/data"


def repository(name: str) -> str:
    return f"{REPOSITORIES}/{name}"


def layer_link(name: str, digest: Digest) -> str:
    return f"{REPOSITORIES}/{name}/_layers/{digest.algorithm}/{digest.hex}/link"


def manifests(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_manifests"


def revisions(name: str, algorithm: str) -> str:
    return f"{manifests(name)}/revisions/{algorithm}"


def revision_dir(name: str, digest: Digest) -> str:
    return f"{revisions(name, digest.algorithm)}/{digest.hex}"


def revision_link(name: str, digest: Digest) -> str:
    return f"{revision_dir(name, digest)}/link"


def revision_media_type(name: str, digest: Digest) -> str:
    """dockyard keeps the pushed Content-Type beside the revision link (distribution ignores it)."""
    return f"{revision_dir(name, digest)}/mediatype"


def tags(name: str) -> str:
    return f"{manifests(name)}/tags"


def tag_dir(name: str, tag: str) -> str:
    return f"{tags(name)}/{tag}"


def tag_current_link(name: str, tag: str) -> str:
    return f"{tag_dir(name, tag)}/current/link"


def tag_index_link(name: str, tag: str, digest: Digest) -> str:
    return f"{tag_dir(name, tag)}/index/{digest.algorithm}/{digest.hex}/link"


def uploads(name: str) -> str:
    return f"{REPOSITORIES}/{name}/_uploads"


def upload_dir(name: str, upload_id: str) -> str:
    return f"{uploads(name)}/{upload_id}"


def upload_data(name: str, upload_id: str) -> str:
    return f"{upload_dir(name, upload_id)}/data"


def upload_started_at(name: str, upload_id: str) -> str:
    return f"{upload_dir(name, upload_id)}/startedat"


def upload_hash_state(name: str, upload_id: str, offset: int) -> str:
    """The saved sha256 state after `offset` bytes (dockyard's own; distribution keeps its
    Go hash states under `hashstates/`, which this does not touch)."""
    return f"{upload_dir(name, upload_id)}/dockyard-hashstate/sha256/{offset}"
