"""`dockyard serve [CONFIG]` and friends, mirroring distribution's `registry` command."""

from __future__ import annotations

import importlib
import sys

import click

from dockyard import __version__

# Subcommands load on use: `dockyard gc` should not pay for the HTTP client, nor `dockyard ls`
# for the storage code. Name -> "module:attribute".
COMMANDS = {
    "serve": "dockyard.cli.serve:serve",
    "index": "dockyard.cli.index:index",
    "passwd": "dockyard.cli.passwd:passwd",
    "garbage-collect": "dockyard.cli.gc:garbage_collect",
    "gc": "dockyard.cli.gc:garbage_collect",
    "fsck": "dockyard.cli.fsck:fsck",
    "readonly": "dockyard.cli.read_only:read_only",
    "health": "dockyard.cli.health:health",
    "ls": "dockyard.cli.remote:ls",
    "tags": "dockyard.cli.remote:tags",
    "inspect": "dockyard.cli.remote:inspect_command",
    "rm": "dockyard.cli.remove:rm",
    "du": "dockyard.cli.remote:du",
    "notifications": "dockyard.cli.notifications:notifications",
    "prune": "dockyard.cli.prune:prune",
}


class LazyGroup(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        # A file or directory this user may not touch is an operator's problem to fix, so
        # it gets one line naming the path, not a traceback.
        try:
            return super().invoke(ctx)
        except PermissionError as error:
            click.echo(f"dockyard: permission denied: {error.filename or error}", err=True)
            sys.exit(1)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        command = getattr(importlib.import_module(module_name), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-v", "--version", prog_name="dockyard")
def main() -> None:
    """dockyard: a container image registry (OCI Distribution 1.1, Docker Registry v2)."""


if __name__ == "__main__":
    main()
