"""Who owns a filesystem store, and whether this process writing to it would leave files its
owner cannot change (the `sudo dockyard gc` mistake: a root-owned index.sqlite, after which
the registry's own service user can no longer start)."""

from __future__ import annotations

import os
import pwd


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def foreign_ownership(root: str) -> os.stat_result | None:
    """When this process runs as root and the store (its root directory, or the index
    directory in it) belongs to another user, that directory's status; None when writing
    here is fine."""
    if os.geteuid() != 0:
        return None  # anyone else can only write what the store's permissions allow
    for path in (root, os.path.join(root, "dockyard")):
        try:
            status = os.stat(path)
        except FileNotFoundError:
            continue
        if status.st_uid != 0:
            return status
    return None


def foreign_owner(root: str) -> int | None:
    """The store owner's uid when this process runs as root and the store belongs to
    another user; None when writing here is fine."""
    status = foreign_ownership(root)
    return None if status is None else status.st_uid


def ownership_problem(root: str, what: str) -> str | None:
    """A one-line explanation when `what` should not write to the store at `root`."""
    owner = foreign_owner(root)
    if owner is None:
        return None
    name = user_name(owner)
    return (f"dockyard: the store {root} belongs to {name} (uid {owner}); {what} as root "
            f"would leave files {name} cannot write. Run it as that user (sudo -u {name} "
            f"dockyard ...), or chown -R the store to the user the registry runs as")


# Set by the container image: there the registry and `docker exec ... registry
# garbage-collect` start as root, and should work as whoever owns the volume.
BECOME_OWNER_ENV = "DOCKYARD_BECOME_STORE_OWNER"


def become_store_owner(root: str) -> bool:
    """With DOCKYARD_BECOME_STORE_OWNER=1, switch a root process to the user owning the store
    (and that user's groups), so everything it writes stays that user's; True if it did.
    Without it, a root process on another user's store is refused (`ownership_problem`)."""
    if os.environ.get(BECOME_OWNER_ENV) != "1":
        return False
    status = foreign_ownership(root)
    if status is None:
        return False
    owner = status.st_uid
    try:
        entry = pwd.getpwuid(owner)
    except KeyError:  # a uid with no name here: its directory's group, and no others
        gid = status.st_gid
        os.setgroups([])
    else:
        gid = entry.pw_gid
        os.initgroups(entry.pw_name, gid)
        os.environ["HOME"] = entry.pw_dir
    os.setgid(gid)
    os.setuid(owner)
    return True
