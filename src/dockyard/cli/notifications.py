"""`dockyard notifications [CONFIG]`: how far each webhook endpoint has been given the
registry's events, read from the index (the registry need not be running)."""

from __future__ import annotations

import json
import sys

import click

from dockyard.cli.common import EXIT_FAILURE, load_or_exit, require_persistent


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
def notifications(as_json: bool, config: str | None) -> None:
    """Each endpoint of `notifications.endpoints`: events waiting for it, events sent,
    failures in a row and the last error. Exit 1 if an endpoint is failing."""
    from dockyard.cli.index import open_migrated, run_on_index
    from dockyard.notifications.status import delivery_report

    settings = load_or_exit(config)
    require_persistent(settings, "notifications")
    endpoints = settings.notifications.endpoints
    if not endpoints:
        click.echo("no notification endpoints are configured (notifications.endpoints)")
        return
    store = open_migrated(settings)
    try:
        report = run_on_index(store, delivery_report(store, endpoints))
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps({"endpoints": report}, indent=2))
    else:
        _print_table(report)
    if any(entry["failures"] for entry in report):
        sys.exit(EXIT_FAILURE)


def _print_table(report: list[dict[str, object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("ENDPOINT", "URL", "PENDING", "SENT", "FAILURES", "LAST SUCCESS",
                   "LAST ERROR"):
        table.add_column(column, justify="right" if column in ("PENDING", "SENT", "FAILURES")
                         else "left")
    for entry in report:
        table.add_row(str(entry["name"]), str(entry["url"]), str(entry["pending"]),
                      str(entry["sent"]), str(entry["failures"]),
                      str(entry["lastSuccess"] or "-"), str(entry["lastError"] or "-"))
    Console(width=200, soft_wrap=True).print(table)
