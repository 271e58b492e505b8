"""`dockyard serve [CONFIG]` and friends, mirroring distribution's `registry` command."""

from __future__ import annotations

import click

from dockyard import __version__
from dockyard.cli.common import load_or_exit
from dockyard.cli.gc import garbage_collect
from dockyard.cli.index import index
from dockyard.cli.passwd import passwd
from dockyard.cli.remote import du, inspect_command, ls, rm, tags


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="dockyard")
def main() -> None:
    """dockyard: a container image registry (OCI Distribution 1.1, Docker Registry v2)."""


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def serve(config: str | None) -> None:
    """Serve the registry. CONFIG is a distribution-style config.yml (optional)."""
    from dockyard.server import serve as run_server

    run_server(load_or_exit(config), config)


main.add_command(index)
main.add_command(passwd)
main.add_command(garbage_collect)
main.add_command(garbage_collect, name="gc")
main.add_command(ls)
main.add_command(tags)
main.add_command(inspect_command)
main.add_command(rm)
main.add_command(du)


if __name__ == "__main__":
    main()
