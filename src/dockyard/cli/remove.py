"""`dockyard rm`: delete images, tags by pattern, or a repository's content, over HTTP.

Every argument is checked before anything is deleted (a usage error, exit 2, does nothing).
Then each target is done in turn; one that fails is reported on stderr and the rest are
still done, and the exit status is 1 if any failed.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click

from dockyard.cli.output import Output
from dockyard.cli.remote import (
    EXIT_FAILURE,
    connection_options,
    fail,
    make_connection,
    run,
)
from dockyard.client import (
    ClientError,
    Reference,
    Registry,
    RegistryClient,
    Unsupported,
    parse_image,
)
from dockyard.client.operations import (
    Removal,
    matching_tags,
    plan_all,
    plan_digest,
    plan_tag,
    remove_all,
    remove_digest,
    remove_tag,
)

DELETES_DISABLED = ("deletes are disabled on {host}: set storage.delete.enabled: true in its "
                    "config.yml (or REGISTRY_STORAGE_DELETE_ENABLED=true) and restart it")


@dataclass
class Outcome:
    """One target: what was (or would be) removed, or why it failed."""

    reference: Reference
    removal: Removal | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        if self.removal is None:
            return {"reference": str(self.reference), "error": self.error}
        return {"reference": str(self.reference), **self.removal.as_dict()}


def attempt(reference: Reference, action: Callable[[], Removal]) -> Outcome:
    try:
        return Outcome(reference, action())
    except Unsupported as error:
        if error.status == 405:
            return Outcome(reference, error=DELETES_DISABLED.format(host=reference.registry.host))
        return Outcome(reference, error=str(error))
    except ClientError as error:
        return Outcome(reference, error=str(error))


@dataclass
class Removing:
    """What the flags ask for, applied to one REGISTRY/REPO[:TAG|@DIGEST] at a time."""

    force: bool
    all_tags: bool
    patterns: tuple[str, ...]
    dry_run: bool

    def check(self, reference: Reference) -> None:
        """Usage errors, found before anything is deleted."""
        if (self.all_tags or self.patterns) and reference.reference is not None:
            flag = "--all-tags" if self.all_tags else "--tags"
            raise click.BadParameter(f"{flag} takes REGISTRY/REPO, without a tag or digest "
                                     f"({reference})")
        if not (self.all_tags or self.patterns) and reference.reference is None:
            raise click.BadParameter(
                f"{reference}: give REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST (or --tags "
                "PATTERN, or --all-tags to delete the whole repository's content)")

    def targets(self, client: RegistryClient, reference: Reference,
                report: Callable[[Outcome], None], say: Callable[[str], None]) -> None:
        repository = reference.repository
        if self.all_tags:
            plan = plan_all if self.dry_run else remove_all
            report(attempt(reference, lambda: plan(client, repository)))
        elif reference.digest is not None:
            digest = reference.digest
            by_digest = plan_digest if self.dry_run else remove_digest
            report(attempt(reference, lambda: by_digest(client, repository, digest)))
        elif reference.tag is not None:
            report(attempt(reference, lambda: self._tag(client, repository, reference.tag)))
        else:
            self._pattern(client, reference, report, say)

    def _tag(self, client: RegistryClient, repository: str, tag: str | None,
             deleting: frozenset[str] = frozenset()) -> Removal:
        assert tag is not None
        if self.dry_run:
            return plan_tag(client, repository, tag)
        return remove_tag(client, repository, tag, self.force, deleting)

    def _pattern(self, client: RegistryClient, reference: Reference,
                 report: Callable[[Outcome], None], say: Callable[[str], None]) -> None:
        try:
            matched = matching_tags(client, reference.repository, self.patterns)
        except ClientError as error:
            report(Outcome(reference, error=str(error)))
            return
        if not matched:
            say(f"no tag of {reference} matches {' or '.join(self.patterns)}: "
                "nothing to remove")
            return
        deleting = frozenset(matched)
        gone: set[str] = set()
        for tag in matched:
            if tag in gone:
                continue  # went with an earlier tag's manifest (registry without tag deletes)
            outcome = attempt(reference.with_reference(tag), functools.partial(
                self._tag, client, reference.repository, tag, deleting))
            if outcome.removal is not None and not self.dry_run:
                gone.update(outcome.removal.removed_tags)
            report(outcome)


@click.command("rm")
@click.argument("images", metavar="IMAGE...", nargs=-1, required=True)
@click.option("-f", "--force", is_flag=True,
              help="Where the registry cannot delete a tag alone, delete its manifest even "
                   "though other tags point at it (they go too).")
@click.option("--all-tags", is_flag=True,
              help="Delete every tagged manifest of REGISTRY/REPO (and its indexes' children).")
@click.option("-t", "--tags", "patterns", multiple=True, metavar="PATTERN",
              help="Delete the tags of REGISTRY/REPO matching this glob (* ? [...]; "
                   "repeatable). Quote it from the shell.")
@click.option("-n", "--dry-run", is_flag=True,
              help="Say what would be deleted; delete nothing.")
@connection_options
@run
def rm(images: tuple[str, ...], force: bool, all_tags: bool, patterns: tuple[str, ...],
       dry_run: bool, **kwargs: Any) -> None:
    """Delete REGISTRY/REPO:TAG or REGISTRY/REPO@DIGEST (several may be given), the tags of
    REGISTRY/REPO matching --tags PATTERN, or with --all-tags all of REGISTRY/REPO.

    A tag is deleted on its own where the registry can (dockyard, OCI 1.1); where it refuses
    (distribution 2.8), its manifest is deleted by digest, which removes every tag pointing
    at it: if that includes other tags (not themselves being deleted), that tag is not
    deleted unless --force is given. Deleting by digest removes the manifest and all its
    tags, and says which.

    Exit status: 0 everything was deleted, 1 something failed (each named on stderr; the
    rest is still done), 2 usage error (nothing is done).
    """
    connection, output = make_connection(kwargs)
    if all_tags and patterns:
        raise click.UsageError("--all-tags and --tags exclude each other")
    removing = Removing(force, all_tags, patterns, dry_run)
    references = [parse_image(image, connection.insecure) for image in images]
    for reference in references:
        removing.check(reference)
    single = len(references) == 1 and not patterns
    outcomes: list[Outcome] = []

    def report(outcome: Outcome) -> None:
        outcomes.append(outcome)
        if single:
            return
        if outcome.error is not None:  # on stderr as it happens, JSON or not
            click.echo(f"dockyard: {outcome.reference}: {outcome.error}", err=True)
        elif not output.as_json and outcome.removal is not None:
            describe_removal(output, outcome.reference, outcome.removal)

    with contextlib.ExitStack() as stack:
        clients: dict[Registry, RegistryClient] = {}
        for reference in references:
            client = clients.get(reference.registry)
            if client is None:
                client = clients[reference.registry] = stack.enter_context(
                    connection.open(reference.registry))
            removing.targets(client, reference, report,
                             say=lambda text: None if output.as_json else output.line(text))
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    if single:
        finish_single(output, outcomes[0])
    elif output.as_json:
        output.json({"results": [outcome.as_dict() for outcome in outcomes],
                     "failed": [str(outcome.reference) for outcome in failed]})
    elif failed and len(outcomes) > 1:
        click.echo(f"dockyard: {len(failed)} of {len(outcomes)} failed: "
                   + ", ".join(str(outcome.reference) for outcome in failed), err=True)
    if failed:
        raise SystemExit(EXIT_FAILURE)


def finish_single(output: Output, outcome: Outcome) -> None:
    """One image named: the output it has always had."""
    if outcome.removal is None:
        fail(outcome.error or "failed")
        return
    if output.as_json:
        output.json(outcome.as_dict())
    else:
        describe_removal(output, outcome.reference, outcome.removal)


def describe_removal(output: Output, reference: Reference, removal: Removal) -> None:
    """What was removed, or with a dry run what would be, in the same order."""
    repository = f"{reference.registry.host}/{removal.repository}"
    dry = removal.dry_run
    if removal.method == "tag":
        tag, digest = removal.removed_tags[0], removal.digests[0]
        output.line(f"Would remove tag {repository}:{tag} (manifest {digest})" if dry else
                    f"Removed tag {repository}:{tag}; manifest {digest} is kept, with any "
                    "other tags pointing at it")
        return
    if not removal.removed_manifests:
        output.line(f"{repository} has no tagged manifests: nothing to remove")
        return
    for digest in removal.removed_manifests:
        output.line(f"{'Would delete' if dry else 'Deleted'} manifest {repository}@{digest}")
    tags = ", ".join(removal.removed_tags)
    if dry:
        if removal.removed_tags:
            output.line(f"Would remove tags: {tags}")
    elif removal.removed_tags:
        output.line(f"Removed tag{'s' if len(removal.removed_tags) > 1 else ''}: {tags}")
    else:
        output.line("It had no tags")
