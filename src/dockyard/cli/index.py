"""`dockyard index ...`: the metadata index kept beside the store."""

from __future__ import annotations

import click

from dockyard.cli.common import load_or_exit, require_persistent, require_store_owner


@click.group()
def index() -> None:
    """The metadata index (catalog, tags, referrers) kept beside the store."""


@index.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def rebuild(config: str | None) -> None:
    """Re-read the whole store into the index (for example after another registry wrote it)."""
    from dockyard.console import err, synchronize_index
    from dockyard.stores import make_driver, make_index

    settings = load_or_exit(config)
    require_persistent(settings, "index rebuild")
    require_store_owner(settings, "index rebuild")
    store = make_index(settings)
    try:
        synchronize_index(make_driver(settings), store, full=True, log=err)
    finally:
        store.close()
