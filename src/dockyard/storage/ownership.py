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


def foreign_owner(root: str) -> int | None:
    """The store owner's uid when this process runs as root and the store (its root
    directory, or the index directory in it) belongs to another user; None when writing
    here is fine."""
    if os.geteuid() != 0:
        return None  # anyone else can only write what the store's permissions allow
    for path in (root, os.path.join(root, "dockyard")):
        try:
            owner = os.stat(path).st_uid
        except FileNotFoundError:
            continue
        if owner != 0:
            return owner
    return None


def ownership_problem(root: str, what: str) -> str | None:
    """A one-line explanation when `what` should not write to the store at `root`."""
    owner = foreign_owner(root)
    if owner is None:
        return None
    name = user_name(owner)
    return (f"dockyard: the store {root} belongs to {name} (uid {owner}); {what} as root "
            f"would leave files {name} cannot write. Run it as that user (sudo -u {name} "
            f"dockyard ...), or chown -R the store to the user the registry runs as")
