"""`dockyard garbage-collect`: distribution's command, safe while the registry serves."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from typing import Any

import click

from dockyard.cli.common import (
    EXIT_FAILURE,
    human_size,
    load_or_exit,
    require_persistent,
    require_store_owner,
)
from dockyard.registry.gc import DEFAULT_GRACE_PERIOD, GCOptions, GCReport

DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_grace(value: str) -> float:
    parts = DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value.strip():
        raise click.BadParameter(f"expected a duration like 0, 90s, 30m or 1h, got {value!r}")
    return sum(float(number) * UNITS[unit or None] for number, unit in parts)


def describe(report: GCReport) -> str:
    verb = "would delete" if report.dry_run else "deleted"
    lines = []
    if report.dry_run:
        lines += [f"manifest eligible for deletion: {item}" for item in report.manifests_deleted]
        lines += [f"blob eligible for deletion: {item}" for item in report.blobs_deleted]
        lines += [f"empty repository to remove: {item}" for item in report.repositories_removed]
    if report.repositories_reindexed:
        lines.append(f"index: re-read {len(report.repositories_reindexed)} repositories "
                     f"changed outside this registry: {', '.join(report.repositories_reindexed)}")
    if not report.full_pass:
        lines.append(f"looked at the {report.candidates} blobs that may have become garbage "
                     "since the last collection (storage.index.solewriter; --full for the "
                     "whole store)")
    elif report.full_pass_reason is not None:
        lines.append(f"looked at the whole store: {report.full_pass_reason}")
    fresh_manifests = (f"kept {report.manifests_kept_fresh} untagged manifests pushed within "
                       "the grace period; " if report.manifests_kept_fresh else "")
    lines.append(
        f"{verb} {len(report.manifests_deleted)} manifests and {len(report.blobs_deleted)} "
        f"blobs, {human_size(report.bytes_freed)}; kept {report.blobs_kept} blobs in use and "
        f"{report.blobs_kept_fresh} uploaded within the grace period; {fresh_manifests}"
        f"{len(report.uploads_purged)} abandoned uploads and "
        f"{len(report.repositories_removed)} empty repositories "
        f"{'to remove' if report.dry_run else 'removed'} ({report.seconds:.2f}s)")
    return "\n".join(lines)


@click.command("garbage-collect")
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("-d", "--dry-run", is_flag=True, help="Report what would be deleted; delete nothing.")
@click.option("-m", "--delete-untagged", is_flag=True,
              help="Also delete manifests no tag reaches (keeping index children and the "
                   "referrers of what is kept).")
@click.option("--grace-period", default=None,
              help="Keep blobs uploaded more recently than this (0: delete at once, like "
                   f"distribution). Default: storage.gc.graceperiod, else "
                   f"{DEFAULT_GRACE_PERIOD:.0f}s.")
@click.option("--full", is_flag=True,
              help="Look at the whole store even where storage.index.solewriter lets the "
                   "collection look at what changed alone.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def garbage_collect(config: str | None, dry_run: bool, delete_untagged: bool,
                    grace_period: str | None, full: bool, as_json: bool) -> None:
    """Delete blobs (and with -m, manifests) nothing uses. Safe while the registry runs."""
    from dockyard.console import err, gc_progress, run_on, synchronize_index
    from dockyard.proxy.expiry import expire_cached_content
    from dockyard.registry.gc_runs import GCAlreadyRunning, GCRuns
    from dockyard.stores import make_driver, make_index, scratch_index

    settings = load_or_exit(config)
    require_persistent(settings, "garbage-collect")
    if not dry_run:
        require_store_owner(settings, "garbage-collect")
    options = GCOptions(
        dry_run=dry_run, delete_untagged=delete_untagged,
        # The config's grace period is the scheduled collections'; the same for this one
        # (REGISTRY_STORAGE_GC_GRACEPERIOD=0 makes distribution's command line behave as
        # distribution's does).
        grace_period=(settings.storage.gc.grace_period if grace_period is None
                      else parse_grace(grace_period)),
        upload_purge_age=settings.storage.upload_purging.age,
        sole_writer=settings.storage.sole_writer, full=full,
    )
    if settings.storage.s3 is not None and not dry_run and not settings.database.enabled:
        # The SQLite index's transactions and locks are local files: they exclude only
        # the registries that share this index directory, on this host (with the index in
        # PostgreSQL, every registry using that database).
        err("dockyard: note: collecting an S3 store is safe against pushes to registries "
            f"using the index in {settings.storage.root_directory} on this host only; "
            "nothing else may push to the bucket meanwhile")
    driver = make_driver(settings)
    # A dry run works on a private copy of the index, so it changes nothing on disk (not
    # even an index file created by a user other than the store's owner).
    opened = scratch_index(settings) if dry_run else contextlib.closing(make_index(settings))
    try:
        with opened as index:
            if not run_on(driver, index.is_complete(), index):
                # A store never served by dockyard (say, distribution's): index it first.
                synchronize_index(driver, index, full=True, log=err)
            if settings.proxy is not None:
                expired = run_on(driver, expire_cached_content(
                    driver, index, settings.proxy.upstreams, dry_run), index)
                err(f"{'would expire' if dry_run else 'expired'} "
                    f"{len(expired.manifests)} cached manifests and {len(expired.layers)} "
                    "layer links fetched longer ago than proxy.ttl")
            with gc_progress() as progress:
                status = run_on(driver, GCRuns(driver, index).run(options, "command",
                                                                   progress), index)
    except GCAlreadyRunning:
        click.echo("dockyard: a garbage collection is already running on this store "
                   "(see GET /admin/gc); try again when it ends", err=True)
        sys.exit(EXIT_FAILURE)
    if status["state"] != "finished":
        click.echo(f"dockyard: garbage collection failed: {status.get('error')}", err=True)
        sys.exit(EXIT_FAILURE)
    report = GCReport(**status["report"])
    output: Any = report.as_dict() if as_json else describe(report)
    click.echo(json.dumps(output, indent=2) if as_json else output)
