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


if __name__ == "__main__":
    main()
