"""`dockyard serve [CONFIG]`."""

from __future__ import annotations

import click

from dockyard.cli.common import load_or_exit


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def serve(config: str | None) -> None:
    """Serve the registry. CONFIG is a distribution-style config.yml (optional)."""
    from dockyard.server import serve as run_server

    run_server(load_or_exit(config), config)
