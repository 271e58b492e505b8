"""`dockyard du --config CONFIG`: disk usage read from the store itself, not over HTTP.

Besides what tags keep (as `du REGISTRY` reports it), it says what else is on disk:
untagged manifests and what only they keep, blobs nothing references, and uploads. It
writes nothing to the store: the index is read from a private copy (`scratch_index`),
brought in line with the store there.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from dockyard.cli.common import EXIT_FAILURE, load_or_exit, require_persistent
from dockyard.cli.output import Output, sharing_text, show_usage_table
from dockyard.client.operations import RepositoryUsage, Usage, Walk
from dockyard.registry.usage import Amount, StoreUsage


def store_disk_usage(config_path: str, output: Output) -> None:
    from dockyard.console import counted_progress, run_on, synchronize_index
    from dockyard.proxy.routes import upstream_of
    from dockyard.registry.usage import store_usage
    from dockyard.stores import make_driver, scratch_index, store_location

    settings = load_or_exit(config_path)
    require_persistent(settings, "du --config")
    root = store_location(settings)
    if settings.storage.s3 is None and not os.path.isdir(root):
        # The filesystem driver would create it: say so instead, and write nothing.
        click.echo(f"dockyard: there is no store at {root} (storage.filesystem.rootdirectory "
                   f"in {config_path})", err=True)
        sys.exit(EXIT_FAILURE)
    driver = make_driver(settings)
    with scratch_index(settings) as index:
        synchronize_index(driver, index, full=False, log=lambda _: None)
        with counted_progress("reading blob sizes") as progress:
            result = run_on(driver, store_usage(driver, index,
                                                settings.storage.gc.grace_period,
                                                settings.storage.upload_purging.age, progress),
                            index)
    usage = as_usage(result)
    upstreams = settings.proxy.upstreams if settings.proxy is not None else ()
    for repository in result.repositories:
        cached = upstream_of(repository.name, upstreams)
        if cached is not None and repository.missing:
            # A cache fetches a blob when a client first asks for it.
            click.echo(f"dockyard: note: {repository.name} is a cache of "
                       f"{cached[0].remoteurl}: {len(repository.missing)} blobs its tags "
                       "name are not fetched yet", err=True)
            continue
        for digest in repository.missing:
            click.echo(f"dockyard: warning: {repository.name} needs {digest}, which the "
                       "store does not have", err=True)
    if output.as_json:
        output.json({"store": root, **usage.as_dict(), **extra_as_dict(result)})
        return
    show_store_usage(output, root, usage, result)


def as_usage(result: StoreUsage) -> Usage:
    """The tag-reachable part, in the shape `du REGISTRY` reports."""
    return Usage([RepositoryUsage(r.name, r.tags, Walk(r.blobs, r.manifests, r.missing))
                  for r in result.repositories])


def amount(value: Amount, key: str = "blobs") -> dict[str, int]:
    return {key: value.count, "size": value.size}


def extra_as_dict(result: StoreUsage) -> dict[str, Any]:
    return {
        "untagged": {"manifests": result.untagged_manifests.count,
                     "repositories": result.untagged_repositories,
                     "size": result.untagged_manifests.size,
                     "onlyTheyReach": amount(result.untagged_only)},
        "unreferenced": {**amount(result.unreferenced),
                         "gracePeriod": round(result.grace_period),
                         "withinGracePeriod": amount(result.unreferenced_fresh)},
        "uploads": {"inProgress": amount(result.uploads_active, "count"),
                    "abandoned": amount(result.uploads_abandoned, "count"),
                    "purgeAge": None if result.purge_age is None else round(result.purge_age)},
        "stored": amount(result.stored),
    }


def duration(seconds: float) -> str:
    for unit, length in (("h", 3600), ("m", 60)):  # as config.yml writes them: 168h
        if seconds >= length and seconds % length == 0:
            return f"{seconds // length:.0f}{unit}"
    return f"{seconds:g}s"


def plural(count: int, word: str, words: str | None = None) -> str:
    return f"{count} {word if count == 1 else words or word + 's'}"


def show_store_usage(output: Output, root: str, usage: Usage, result: StoreUsage) -> None:
    size = output.size
    if usage.repositories:
        show_usage_table(output, usage)
        output.line(sharing_text(output, usage))
    else:
        output.line(f"{root} has no repositories")
    untagged, only = result.untagged_manifests, result.untagged_only
    output.line(f"Untagged manifests: {untagged.count} in "
                f"{plural(result.untagged_repositories, 'repository', 'repositories')}, "
                f"{size(untagged.size)}; only they keep {size(only.size)} "
                f"({plural(only.count, 'blob')}), which garbage-collect --delete-untagged "
                "frees")
    fresh = result.unreferenced_fresh
    output.line(f"Unreferenced blobs: {result.unreferenced.count}, "
                f"{size(result.unreferenced.size)}, which garbage-collect frees; and "
                f"{plural(fresh.count, 'blob')} ({size(fresh.size)}) uploaded within the "
                f"grace period ({duration(result.grace_period)}), kept for now")
    active, abandoned = result.uploads_active, result.uploads_abandoned
    purge = "never purged" if result.purge_age is None else (
        f"idle over {duration(result.purge_age)}, purged by garbage-collect")
    output.line(f"Uploads: {active.count} in progress, {size(active.size)}; "
                f"{abandoned.count} abandoned ({purge}), {size(abandoned.size)}")
    output.line(f"In the store: {plural(result.stored.count, 'blob')}, "
                f"{size(result.stored.size)}, plus "
                f"{size(active.size + abandoned.size)} of uploads")
