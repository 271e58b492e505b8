"""`dockyard health [CONFIG]`: is the registry this config describes healthy? For container
health checks and service managers, which need an exit code rather than an HTTP client."""

from __future__ import annotations

import sys

import click

from dockyard.cli.common import EXIT_FAILURE, load_or_exit


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--timeout", default=5.0, show_default=True, help="Seconds to wait for the answer.")
def health(config: str | None, timeout: float) -> None:
    """Ask the registry CONFIG describes (on this host) for /debug/health: exit 0 if it
    answers 200, 1 otherwise, printing why."""
    import httpx

    settings = load_or_exit(config)
    url = settings.http.local_url("/debug/health")
    try:
        # The certificate names the public host, not loopback: this is our own server.
        response = httpx.get(url, timeout=timeout, verify=False)
    except httpx.HTTPError as error:
        click.echo(f"dockyard: {url}: {error or type(error).__name__}", err=True)
        sys.exit(EXIT_FAILURE)
    if response.status_code != 200:
        click.echo(f"dockyard: {url}: {response.status_code} {response.text[:500]}", err=True)
        sys.exit(EXIT_FAILURE)
    click.echo(f"{url}: healthy")
