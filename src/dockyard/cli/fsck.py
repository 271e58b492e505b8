"""`dockyard fsck`: check that every stored blob hashes to its digest."""

from __future__ import annotations

import json
import sys

import click

from dockyard.cli.common import (
    EXIT_FAILURE,
    human_size,
    load_or_exit,
    require_persistent,
    require_store_owner,
)


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--quarantine", is_flag=True,
              help="Move blobs that do not match their digest out of the store (to "
                   "dockyard/quarantine/), so the digest reads as missing and a new push "
                   "of the real content stores it again.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def fsck(config: str | None, quarantine: bool, as_json: bool) -> None:
    """Read every blob and check it hashes to its digest. Exits 1 if any does not."""
    from dockyard.console import counted_progress, run_on
    from dockyard.registry.fsck import verify_blobs
    from dockyard.stores import make_driver

    settings = load_or_exit(config)
    require_persistent(settings, "fsck")
    if quarantine:
        require_store_owner(settings, "fsck --quarantine")
    with counted_progress("verifying blobs") as progress:
        driver = make_driver(settings)
        report = run_on(driver, verify_blobs(driver, quarantine, progress))
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        for item in report.corrupt:
            what = "has no data" if item.actual is None else f"hashes to {item.actual}"
            moved = f"; moved to {item.quarantined_to}" if item.quarantined_to else ""
            click.echo(f"corrupt blob: {item.digest} {what} ({human_size(item.size)}){moved}")
        click.echo(f"checked {report.blobs_checked} blobs, {human_size(report.bytes_checked)}: "
                   f"{len(report.corrupt)} do not match their digest ({report.seconds:.2f}s)")
    if report.corrupt:
        sys.exit(EXIT_FAILURE)
