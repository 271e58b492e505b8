"""Managing any registry over HTTP: `dockyard ls`, `tags`, `inspect`, `rm` and `du`.

These talk the Distribution API through `dockyard.client`, so they work against dockyard,
distribution (registry:2) and other registries alike. Output is a table for people, or JSON
with ``--json``. Exit codes: 0 done, 1 the operation failed (registry error, not found,
unreachable, refused), 2 usage error.
"""

from __future__ import annotations

import functools
import os
import ssl
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from dockyard.cli.output import Output, sharing_text, show_usage_table
from dockyard.client import (
    ClientError,
    Credentials,
    InvalidReference,
    NotFound,
    Reference,
    Registry,
    RegistryClient,
    find_credentials,
    parse_image,
    parse_reference,
)
from dockyard.client.auth import ENV_PASSWORD
from dockyard.client.loopback import choose_scheme
from dockyard.client.operations import (
    Inspection,
    Usage,
    inspect,
    iso_time,
    usage,
)
from dockyard.client.reference import parse_registry
from dockyard.client.registry import DEFAULT_PAGE_SIZE, DEFAULT_TIMEOUT, ManifestHead

EXIT_FAILURE = 1
EXIT_USAGE = 2
DEFAULT_REGISTRY = "localhost:5000"
ENV_REGISTRY = "DOCKYARD_REGISTRY"

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_FAILURE) -> None:
    click.echo(f"dockyard: {message}", err=True)
    sys.exit(code)


# -- options shared by every command ------------------------------------------------------

@dataclass
class Connection:
    insecure: bool
    ca_cert: str | None
    username: str | None
    password: str | None
    timeout: float
    page_size: int

    def credentials_for(self, host: str) -> Credentials | None:
        username, password = self.username, self.password
        if password is not None and username is None:
            raise click.UsageError("--password needs --username")
        if username is not None and password is None and ENV_PASSWORD not in os.environ:
            if not sys.stdin.isatty():
                raise click.UsageError(
                    "--username needs --password (or DOCKYARD_PASSWORD in the environment)")
            password = click.prompt(f"Password for {username}@{host}", hide_input=True,
                                    err=True)
        return find_credentials(host, username, password)

    @contextmanager
    def open(self, registry: Registry) -> Iterator[RegistryClient]:
        verify: bool | ssl.SSLContext = True
        try:
            if registry.scheme == "https":
                verify = (ssl.create_default_context(cafile=self.ca_cert) if self.ca_cert
                          else not self.insecure)
        except (OSError, ssl.SSLError) as error:
            raise click.BadParameter(f"cannot use {self.ca_cert}: {error}",
                                     param_hint="--ca-cert") from None
        registry = choose_scheme(registry, verify, self.timeout)
        client = RegistryClient(registry, self.credentials_for(registry.host), verify,
                                self.timeout, self.page_size)
        with client:
            yield client


def connection_options(command: F) -> F:
    """--insecure, --ca-cert, --username, --password, --timeout, --page-size, --json."""
    options = [
        click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table."),
        click.option("--insecure", is_flag=True,
                     help="Use plain HTTP (with an explicit https:// prefix: HTTPS without "
                          "certificate checks)."),
        click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False),
                     help="Trust this CA bundle (PEM) for HTTPS."),
        click.option("-u", "--username", help="User name (or DOCKYARD_USERNAME, or docker's "
                                              "config.json)."),
        click.option("-p", "--password", help="Password (or DOCKYARD_PASSWORD)."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=DEFAULT_TIMEOUT,
                     show_default=True, help="Seconds to wait for the registry."),
        click.option("--page-size", type=click.IntRange(min=1), default=DEFAULT_PAGE_SIZE,
                     show_default=True, help="Entries asked for per catalog/tags page."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def run(command: F) -> F:
    """Turn the client's exceptions into one line on stderr and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except InvalidReference as error:
            raise click.BadParameter(str(error)) from None
        except ClientError as error:
            fail(str(error))
        return None

    return wrapper  # type: ignore[return-value]


def make_connection(kwargs: dict[str, Any]) -> tuple[Connection, Output]:
    connection = Connection(kwargs.pop("insecure"), kwargs.pop("ca_cert"),
                            kwargs.pop("username"), kwargs.pop("password"),
                            kwargs.pop("timeout"), kwargs.pop("page_size"))
    return connection, Output(kwargs.pop("as_json"))


def default_registry() -> str:
    return os.environ.get(ENV_REGISTRY) or DEFAULT_REGISTRY


# -- ls, tags -----------------------------------------------------------------------------

@click.command("ls")
@click.argument("registry", required=False)
@connection_options
@run
def ls(registry: str | None, **kwargs: Any) -> None:
    """List the repositories of REGISTRY (host:port; default $DOCKYARD_REGISTRY or
    localhost:5000), following the catalog's pages."""
    connection, output = make_connection(kwargs)
    target = parse_registry(registry or default_registry(), connection.insecure)
    with connection.open(target) as client:
        repositories = client.catalog()
    if output.as_json:
        output.json({"registry": target.host, "repositories": repositories})
    elif not repositories:
        output.line(f"{target.host} has no repositories")
    else:
        output.table(["REPOSITORY"], [[name] for name in repositories])


@click.command("tags")
@click.argument("repository")
@click.option("-d", "--digests", is_flag=True, help="Also show the digest each tag points at.")
@connection_options
@run
def tags(repository: str, digests: bool, **kwargs: Any) -> None:
    """List the tags of REGISTRY/REPO. With --digests or --json, each tag's digest is
    looked up too (a HEAD per tag), and its push time where the registry gives it."""
    connection, output = make_connection(kwargs)
    reference = parse_image(repository, connection.insecure)
    if reference.reference is not None:
        raise click.BadParameter("expected REGISTRY/REPO without a tag or digest")
    with connection.open(reference.registry) as client:
        names = client.tags(reference.repository)
        # A HEAD per tag: its digest, and its push time where the registry says.
        heads = tag_heads(client, reference.repository, names
                          ) if digests or output.as_json else {}
    pushed = {tag: iso_time(head.pushed) for tag, head in heads.items()
              if head.pushed is not None}
    if output.as_json:
        result: dict[str, Any] = {"repository": str(reference), "tags": names}
        if digests:
            result["digests"] = {tag: head.digest for tag, head in heads.items()}
        if pushed:
            result["pushed"] = pushed
        output.json(result)
    elif not names:
        output.line(f"{reference} has no tags")
    elif not digests:
        output.table(["TAG"], [[tag] for tag in names])
    elif not pushed:
        output.table(["TAG", "DIGEST"], [[tag, head.digest] for tag, head in heads.items()])
    else:
        output.table(["TAG", "DIGEST", "PUSHED"],
                     [[tag, head.digest, pushed.get(tag, "?")] for tag, head in heads.items()])


def tag_heads(client: RegistryClient, repository: str, names: list[str]
              ) -> dict[str, ManifestHead]:
    """Digest and push time of each tag; a tag deleted since the listing is left out."""
    heads: dict[str, ManifestHead] = {}
    for tag in names:
        try:
            heads[tag] = client.head(repository, tag)
        except NotFound:
            continue
    return heads


# -- inspect ------------------------------------------------------------------------------

@click.command("inspect")
@click.argument("image")
@click.option("--bytes", "exact", is_flag=True, help="Sizes in bytes rather than KiB/MiB.")
@connection_options
@run
def inspect_command(image: str, exact: bool, **kwargs: Any) -> None:
    """Show REGISTRY/REPO:TAG (or @sha256:...): digest, media type, platforms, layers, size."""
    connection, output = make_connection(kwargs)
    output.exact_sizes = exact
    reference = parse_image(image, connection.insecure)
    if reference.reference is None:
        raise click.BadParameter("expected REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST")
    with connection.open(reference.registry) as client:
        result = inspect(client, reference.repository, reference.reference, str(reference))
    if output.as_json:
        output.json(result.as_dict())
        return
    show_inspection(output, result)


def show_inspection(output: Output, result: Inspection) -> None:
    pairs = [("Reference", result.reference), ("Digest", result.digest),
             ("Media type", result.media_type or "?")]
    if result.pushed is not None:
        pairs.append(("Pushed", iso_time(result.pushed)))
    if result.children is not None:
        pairs.append(("Platforms", str(len(result.children))))
        pairs.append(("Size", f"{output.size(result.size)} (all platforms, shared layers "
                              "counted once)"))
        output.fields(pairs)
        output.line("")
        output.table(["PLATFORM", "DIGEST", "SIZE"],
                     [[c.platform or "unknown", c.digest,
                       output.size(c.size) if c.size is not None else "missing"]
                      for c in result.children], right=["SIZE"])
        return
    pairs.append(("Platform", result.platform or "unknown"))
    if result.config is not None:
        pairs.append(("Config", f"{result.config.digest} ({output.size(result.config.size)})"))
    pairs.append(("Size", f"{output.size(result.size)} (config + {len(result.layers)} "
                          f"layer{'' if len(result.layers) == 1 else 's'})"))
    output.fields(pairs)
    if result.layers:
        output.line("")
        output.table(["#", "LAYER", "SIZE"],
                     [[str(n), layer.digest, output.size(layer.size)]
                      for n, layer in enumerate(result.layers, 1)], right=["#", "SIZE"])


# -- du -----------------------------------------------------------------------------------

CONFIG_SUFFIXES = (".yml", ".yaml")


@click.command("du")
@click.argument("target", required=False)
@click.option("--bytes", "exact", is_flag=True, help="Sizes in bytes rather than KiB/MiB.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Read the store this config.yml names directly instead of asking a "
                   "registry over HTTP; also reports untagged manifests, unreferenced blobs "
                   "and uploads. Writes nothing to the store.")
@connection_options
@run
def du(target: str | None, exact: bool, config_path: str | None, **kwargs: Any) -> None:
    """Storage used per repository of REGISTRY (or by REGISTRY/REPO), and in total; or,
    with --config CONFIG (or a TARGET that is a .yml file), of the store that config names.

    A repository's size is every distinct blob its tags keep: manifests (and index
    children), configs and layers. The total counts blobs shared between repositories once.
    """
    connection, output = make_connection(kwargs)
    output.exact_sizes = exact
    if config_path is None and target is not None and \
            target.lower().endswith(CONFIG_SUFFIXES) and os.path.isfile(target):
        config_path, target = target, None
    if config_path is not None:
        if target is not None:
            raise click.UsageError("--config reads a whole store: give no REGISTRY with it")
        from dockyard.cli.store_usage import store_disk_usage
        store_disk_usage(config_path, output)
        return
    parsed = parse_reference(target or default_registry(), connection.insecure,
                             require_repository=False)
    if isinstance(parsed, Reference) and parsed.reference is not None:
        raise click.BadParameter("expected REGISTRY or REGISTRY/REPO, without a tag or digest")
    registry = parsed.registry if isinstance(parsed, Reference) else parsed
    with connection.open(registry) as client:
        names = [parsed.repository] if isinstance(parsed, Reference) else client.catalog()
        result = usage(client, names)
    for repository in result.repositories:
        for digest in repository.walk.missing:
            click.echo(f"dockyard: warning: {repository.name}: an index names {digest}, which "
                       "the registry does not have", err=True)
    if output.as_json:
        output.json({"registry": registry.host, **result.as_dict()})
        return
    show_usage(output, registry, result)


def show_usage(output: Output, registry: Registry, result: Usage) -> None:
    if not result.repositories:
        output.line(f"{registry.host} has no repositories")
        return
    show_usage_table(output, result)
    output.line(sharing_text(output, result))


COMMANDS = [ls, tags, inspect_command, du]
