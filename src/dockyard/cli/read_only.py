"""`dockyard readonly [CONFIG] [--on|--off]`: read-only maintenance mode, said or switched.

It writes where the server keeps the switch (the index the config names), so every worker
and every instance sharing that index follows from its next write request, as with
`POST /admin/readonly`, and it needs no admin API."""

from __future__ import annotations

import json
import os
import socket
import sys

import click

from dockyard.cli.common import (
    EXIT_FAILURE,
    load_or_exit,
    require_persistent,
    require_store_owner,
)


@click.command("readonly")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--on/--off", "enabled", default=None,
              help="Refuse every write (or take writes again); without either, say which.")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
def read_only(config: str | None, enabled: bool | None, as_json: bool) -> None:
    """Say, or switch, read-only maintenance mode on a running registry's store."""
    from dockyard.cli.index import run_on_index
    from dockyard.index import IndexUnavailable, SchemaMismatch
    from dockyard.registry.read_only import ReadOnlyMode, ReadOnlyState
    from dockyard.storage.ownership import user_name
    from dockyard.stores import make_index

    settings = load_or_exit(config)
    require_persistent(settings, "readonly")
    if enabled is not None:
        require_store_owner(settings, "readonly")
    index = make_index(settings)
    mode = ReadOnlyMode(index, settings.storage.read_only)
    by = f"{user_name(os.geteuid())}@{socket.gethostname()} (command line)"
    try:
        state: ReadOnlyState = run_on_index(
            index, mode.state() if enabled is None else mode.switch(enabled, by))
    except (IndexUnavailable, SchemaMismatch) as error:
        click.echo(f"dockyard: {error}", err=True)
        sys.exit(EXIT_FAILURE)
    finally:
        index.close()
    if as_json:
        click.echo(json.dumps(state.as_dict(), indent=2))
        return
    switched = state.switch
    origin = (f"switched live by {switched.by or 'an anonymous client'} at {switched.at}"
              if state.source == "live" and switched is not None
              else "as storage.maintenance.readonly.enabled says")
    click.echo(f"read-only maintenance mode is {'on' if state.enabled else 'off'} ({origin})")
