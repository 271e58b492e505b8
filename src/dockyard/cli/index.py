"""`dockyard index ...`: the metadata index kept beside the store."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dockyard.cli.common import (
    EXIT_FAILURE,
    load_or_exit,
    require_persistent,
    require_store_owner,
)

T = TypeVar("T")

if TYPE_CHECKING:
    from dockyard.config import Config
    from dockyard.index import Index


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
    store = open_migrated(settings)
    try:
        synchronize_index(make_driver(settings), store, full=True, log=err)
    finally:
        store.close()


@index.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def check(config: str | None) -> None:
    """Compare the index with the store and say which repositories differ, changing
    nothing (exit 1 if any does; `index rebuild`, or the server's next re-sync, fixes it)."""
    from dockyard.console import err, synchronize_index
    from dockyard.stores import make_driver

    settings = load_or_exit(config)
    require_persistent(settings, "index check")
    store = open_migrated(settings)
    try:
        complete = run_on_index(store, store.is_complete())
        report = synchronize_index(make_driver(settings), store, full=False, log=err,
                                   check_only=True)
    finally:
        store.close()
    if not complete:
        click.echo(f"the index has not been built from the store yet "
                   f"({report.repositories} repositories in the store)")
        sys.exit(EXIT_FAILURE)
    for name in report.reindexed:
        click.echo(f"differs from the store: {name}")
    for name in report.removed:
        click.echo(f"not in the store: {name}")
    click.echo(f"{report.repositories} repositories in the store, {len(report.reindexed)} "
               f"differ, {len(report.removed)} only in the index")
    if report.reindexed or report.removed:
        sys.exit(EXIT_FAILURE)


def run_on_index(store: Index, work: Coroutine[Any, Any, T]) -> T:
    """Run `work` in an event loop of its own, then release the index's connections."""
    async def run() -> T:
        try:
            return await work
        finally:
            await store.aclose()

    return asyncio.run(run())


@index.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def migrate(config: str | None) -> None:
    """Bring the index's schema up to the version this dockyard knows (PostgreSQL; the
    embedded SQLite index migrates itself when opened)."""
    from dockyard.index.schema import LATEST

    open_migrated(load_or_exit(config)).close()
    click.echo(f"the index is at schema version {LATEST}")


def open_migrated(settings: Config) -> Index:
    """The index the config names, its schema brought up to date (each migration applied
    is said); exit 1 with a message if that cannot be done."""
    from dockyard.index import IndexUnavailable, SchemaMismatch
    from dockyard.stores import make_index

    try:
        store = make_index(settings)
        if settings.database.enabled:
            import psycopg

            from dockyard.index.postgres import PostgresIndex

            assert isinstance(store, PostgresIndex)
            try:
                applied = run_on_index(store, store.migrate())
            except (psycopg.Error, OSError) as error:
                click.echo(f"dockyard: cannot use the index database "
                           f"{settings.database.location()}: {str(error).strip()}", err=True)
                sys.exit(EXIT_FAILURE)
            for migration in applied:
                click.echo(f"applied migration {migration.version}: {migration.description}")
    except (SchemaMismatch, IndexUnavailable) as error:
        click.echo(f"dockyard: {error}", err=True)
        sys.exit(EXIT_FAILURE)
    return store

