"""`dockyard serve [CONFIG]` and friends, mirroring distribution's `registry` command."""

from __future__ import annotations

import sys

import click

from dockyard import __version__
from dockyard.config import ConfigError, load_config

# Exit codes: 0 fine, 1 runtime failure, 2 usage or configuration error.
EXIT_CONFIG = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="dockyard")
def main() -> None:
    """dockyard: a container image registry (OCI Distribution 1.1, Docker Registry v2)."""


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def serve(config: str | None) -> None:
    """Serve the registry. CONFIG is a distribution-style config.yml (optional)."""
    from dockyard.server import serve as run_server

    try:
        settings = load_config(config)
    except ConfigError as error:
        click.echo(f"dockyard: configuration error: {error}", err=True)
        sys.exit(EXIT_CONFIG)
    run_server(settings, config)


@main.group()
def index() -> None:
    """The metadata index (catalog, tags, referrers) kept beside the store."""


@index.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def rebuild(config: str | None) -> None:
    """Re-read the whole store into the index (for example after another registry wrote it)."""
    from dockyard.api.app import make_driver, make_index
    from dockyard.console import err, synchronize_index

    try:
        settings = load_config(config)
    except ConfigError as error:
        click.echo(f"dockyard: configuration error: {error}", err=True)
        sys.exit(EXIT_CONFIG)
    if settings.storage.driver != "filesystem":
        click.echo("dockyard: only a filesystem store has an index to rebuild", err=True)
        sys.exit(EXIT_CONFIG)
    store = make_index(settings)
    try:
        synchronize_index(make_driver(settings), store, full=True, log=err)
    finally:
        store.close()


if __name__ == "__main__":
    main()
