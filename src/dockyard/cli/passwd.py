"""`dockyard passwd FILE USER`: add or change a user in an htpasswd file (bcrypt)."""

from __future__ import annotations

import os
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
    path = Path(file)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    entry = f"{user}:{hash_password(password)}"
    kept = [line for line in lines if line.partition(":")[0] != user]
    changed = len(kept) != len(lines)
    # Write beside the file and rename over it: readers never see half a file.
    directory = path.parent if str(path.parent) else Path(".")
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.")
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join([*kept, entry]) + "\n")
    os.chmod(temporary, 0o640)
    os.replace(temporary, path)
    click.echo(f"{'changed password for' if changed else 'added'} user {user} in {file}",
               err=True)
