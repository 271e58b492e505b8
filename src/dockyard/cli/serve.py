"""`dockyard serve [CONFIG]`."""

from __future__ import annotations

import click

from dockyard.cli.common import load_or_exit, warn_unknown


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--strict-config", is_flag=True, default=None,
              help="Refuse to start if the config has unknown keys (also "
                   "DOCKYARD_STRICT_CONFIG=1); without it they are warnings.")
def serve(config: str | None, strict_config: bool | None) -> None:
    """Serve the registry. CONFIG is a distribution-style config.yml (optional)."""
    from dockyard.server import serve as run_server

    settings = load_or_exit(config, strict=strict_config, warn=False)
    if settings.log.formatter == "text":
        warn_unknown(settings.unknown_keys)  # with JSON logs, the server logs them
    run_server(settings, config)
