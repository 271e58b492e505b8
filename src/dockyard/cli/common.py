"""What the commands share: loading the config and opening the store."""

from __future__ import annotations

import sys

import click

from dockyard.config import Config, ConfigError, load_config

# Exit codes: 0 fine, 1 runtime failure, 2 usage or configuration error.
EXIT_FAILURE = 1
EXIT_CONFIG = 2


def load_or_exit(path: str | None, strict: bool | None = None, warn: bool = True) -> Config:
    """The config, after warning about each unknown key (unless `warn` is off: the caller
    reports `config.unknown_keys`); exit 2 if it cannot be used."""
    try:
        config = load_config(path, strict=strict)
    except ConfigError as error:
        warn_unknown(error.unknown_keys)
        click.echo(f"dockyard: configuration error: {error}", err=True)
        sys.exit(EXIT_CONFIG)
    if warn:
        warn_unknown(config.unknown_keys)
    return config


def warn_unknown(messages: tuple[str, ...]) -> None:
    for message in messages:
        click.echo(f"dockyard: warning: {message}", err=True)


def require_persistent(config: Config, what: str) -> None:
    """Refuse the in-memory driver (a command's process would see a store of its own), and
    an S3 bucket that cannot be reached, with a message rather than a traceback."""
    if config.storage.driver == "inmemory":
        click.echo(f"dockyard: {what} needs a store that outlives the registry "
                   "(storage.inmemory keeps nothing to work on)", err=True)
        sys.exit(EXIT_CONFIG)
    from dockyard.stores import bucket_problem

    problem = bucket_problem(config)
    if problem is not None:
        click.echo(problem, err=True)
        sys.exit(EXIT_FAILURE)


def require_store_owner(config: Config, what: str) -> None:
    """Refuse to write to a store as root when it belongs to another user (with S3, the
    local directory of the index and locks)."""
    from dockyard.storage.ownership import become_store_owner, ownership_problem

    if become_store_owner(config.storage.root_directory):
        return
    problem = ownership_problem(config.storage.root_directory, what)
    if problem is not None:
        click.echo(problem, err=True)
        sys.exit(EXIT_CONFIG)


def human_size(size: int | None) -> str:
    """Bytes for people: 512 B, 1.5 KiB, 3.2 GiB."""
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
