"""`dockyard prune [--dry-run] [--json] CONFIG`: remove the tags the retention rules
(`retention` in the config) say go, as tag deletes the registry would make itself, and say
what a garbage collection that deletes untagged manifests then frees."""

from __future__ import annotations

import contextlib
import json
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import click

from dockyard.cli.common import (
    EXIT_FAILURE,
    human_size,
    load_or_exit,
    require_persistent,
    require_store_owner,
)

if TYPE_CHECKING:
    from dockyard.config import Config
    from dockyard.registry.registry import Registry
    from dockyard.registry.retention import PrunePlan, TagRemoval


def _when(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


@click.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("-d", "--dry-run", is_flag=True, help="Say what would go; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def prune(config: str | None, dry_run: bool, as_json: bool) -> None:
    """Remove tags by the retention rules. Safe while the registry runs; run
    `garbage-collect --delete-untagged` (or let storage.gc with deleteuntagged) free the
    space."""
    from dockyard import logs
    from dockyard.registry.registry import Registry
    from dockyard.stores import make_driver, make_registry, scratch_index

    settings = load_or_exit(config)
    logs.configure(settings.log)  # each removal is logged, as the server logs it
    require_persistent(settings, "prune")
    if not settings.retention.rules:
        click.echo("no retention rules are configured (retention.rules): nothing to do")
        return
    if not dry_run:
        require_store_owner(settings, "prune")
    driver = make_driver(settings)
    # A dry run works on a private copy of the index (brought in line with the store
    # below), so it changes nothing on disk, as garbage-collect --dry-run.
    with contextlib.ExitStack() as stack:
        registry = (Registry(driver, stack.enter_context(scratch_index(settings))) if dry_run
                    else make_registry(settings, driver))
        if not dry_run:
            stack.callback(registry.index.close)
        plan, done = _prune(registry, settings, dry_run)
    removed = [{"repository": item.repository, "tag": item.tag, "digest": item.digest,
                "pushed": _when(item.pushed), "rule": item.rule} for item in done]
    if as_json:
        click.echo(json.dumps({"dryRun": dry_run, "removed": removed,
                               "repositories": plan.repositories, "tags": plan.tags,
                               "freedBlobs": plan.freed_blobs,
                               "freedBytes": plan.freed_bytes}, indent=2))
        return
    _print_table(removed)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(removed)} of {plan.tags} tags in {plan.repositories} "
               f"repositories; garbage-collect --delete-untagged then frees "
               f"{human_size(plan.freed_bytes)} ({plan.freed_blobs} blobs)")


def _prune(registry: Registry, settings: Config, dry_run: bool
           ) -> tuple[PrunePlan, list[TagRemoval]]:
    """Plan (and unless a dry run, apply) on `registry`: the plan and the removals."""
    from dockyard.console import err, run_on, synchronize_index
    from dockyard.registry.errors import ReadOnly
    from dockyard.registry.retention import apply_prune, plan_prune

    driver, index = registry.driver, registry.index
    if not run_on(driver, index.is_complete(), index):
        # A store never served by dockyard (say, distribution's): index it first.
        synchronize_index(driver, index, full=True, log=err)

    async def work() -> tuple[PrunePlan, list[TagRemoval]]:
        try:
            plan = await plan_prune(registry, settings.retention)
            done = plan.removals if dry_run else await apply_prune(registry, plan)
            return plan, done
        finally:
            await registry.aclose()  # events of the removals, written

    try:
        plan, done = run_on(driver, work(), index)
    except ReadOnly:
        click.echo("dockyard: the registry is in read-only maintenance mode; nothing "
                   "was removed", err=True)
        sys.exit(EXIT_FAILURE)
    return plan, done


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("REPOSITORY", "TAG", "DIGEST", "PUSHED", "RULE"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["repository"], row["tag"], row["digest"][:19],
                      row["pushed"] or "-", row["rule"])
    Console(width=200, soft_wrap=True, highlight=False).print(table)
