"""`dockyard index ...`: the metadata index kept beside the store."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import click

from dockyard.cli.common import (
    EXIT_FAILURE,
    load_or_exit,
    require_persistent,
    require_store_owner,
)

if TYPE_CHECKING:
    from dockyard.config import Config
    from dockyard.index import Index
    from dockyard.index.schema import Migration


@click.group()
def index() -> None:
    """The metadata index (catalog, tags, referrers) kept beside the store."""


@index.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def rebuild(config: str | None) -> None:
    """Re-read the whole store into the index (for example after another registry wrote
    it). With the index in PostgreSQL, this is also how an existing store is imported:
    the database's schema is brought up to date first."""
    from dockyard.console import err, synchronize_index
    from dockyard.stores import make_driver

    settings = load_or_exit(config)
    require_persistent(settings, "index rebuild")
    require_store_owner(settings, "index rebuild")
    store = _open_migrated(settings)
    try:
        synchronize_index(make_driver(settings), store, full=True, log=err)
    finally:
        store.close()


@index.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def migrate(config: str | None) -> None:
    """Bring the index's schema up to the version this dockyard knows (PostgreSQL; the
    embedded SQLite index migrates itself when opened)."""
    from dockyard.index.schema import LATEST

    _open_migrated(load_or_exit(config)).close()
    click.echo(f"the index is at schema version {LATEST}")


def _open_migrated(settings: Config) -> Index:
    """The index the config names, its schema brought up to date (each migration applied
    is said); exit 1 with a message if that cannot be done."""
    from dockyard.index import SchemaMismatch
    from dockyard.stores import make_index

    try:
        store = make_index(settings)
        if settings.database.enabled:
            import psycopg

            try:
                applied = asyncio.run(_migrate(store))
            except (psycopg.Error, OSError) as error:
                click.echo(f"dockyard: cannot use the index database "
                           f"{settings.database.location()}: {str(error).strip()}", err=True)
                sys.exit(EXIT_FAILURE)
            for migration in applied:
                click.echo(f"applied migration {migration.version}: {migration.description}")
    except SchemaMismatch as error:
        click.echo(f"dockyard: {error}", err=True)
        sys.exit(EXIT_FAILURE)
    return store


async def _migrate(store: Index) -> list[Migration]:
    from dockyard.index.postgres import PostgresIndex

    assert isinstance(store, PostgresIndex)
    try:
        return await store.migrate()
    finally:
        await store.aclose()
