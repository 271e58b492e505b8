"""`dockyard passwd FILE USER`: add or change a user in an htpasswd file (bcrypt)."""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from pathlib import Path

import click

from dockyard.auth.htpasswd import BCRYPT_MAX_BYTES, hash_password


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("user")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def passwd(file: str, user: str, password_stdin: bool) -> None:
    """Add USER to the htpasswd FILE, or change their password (bcrypt, like htpasswd -B)."""
    if not user or ":" in user or any(char.isspace() for char in user):
        raise click.BadParameter("a user name may not be empty or hold ':' or spaces",
                                 param_hint="USER")
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise click.BadParameter("the password may not be empty")
    if len(password.encode()) > BCRYPT_MAX_BYTES:
        click.echo(f"note: bcrypt uses the first {BCRYPT_MAX_BYTES} bytes of the password "
                   "(as htpasswd -B does)", err=True)
    # Through a symlink, the file it leads to is the one rewritten; the link stays.
    path = Path(os.path.realpath(file))
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    entry = f"{user}:{hash_password(password)}"
    kept = [line for line in lines if line.partition(":")[0] != user]
    changed = len(kept) != len(lines)
    write_atomically(path, "\n".join([*kept, entry]) + "\n")
    click.echo(f"{'changed password for' if changed else 'added'} user {user} in {file}",
               err=True)


def write_atomically(path: Path, text: str) -> None:
    """Write beside the file and rename over it, so readers never see half a file. The new
    file gets the old one's mode and owner (a password file is often 0600 or 0640 for the
    registry's group); a file that did not exist is made 0600, for its owner alone."""
    try:
        previous: os.stat_result | None = path.stat()
    except FileNotFoundError:
        previous = None
    # mkstemp makes the file 0600, so it is never readable by others, even for a moment.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            if previous is not None:
                try:
                    os.fchown(handle.fileno(), previous.st_uid, previous.st_gid)
                except PermissionError:
                    raise click.ClickException(
                        f"cannot keep the owner of {path} (uid {previous.st_uid}, gid "
                        f"{previous.st_gid}); run as that user or as root") from None
                os.fchmod(handle.fileno(), stat.S_IMODE(previous.st_mode))
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
