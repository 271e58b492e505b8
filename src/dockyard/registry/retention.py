"""Retention policies: which tags the configured rules remove (config.retention), and
removing them as any tag delete is removed (the index first, then the store; a webhook
event each; logged).

A tag's push time is the one the index recorded when it was pushed through dockyard; a tag
read from the store (written by distribution, or indexed by a rebuild) has its current
link's modification time instead, which distribution's layout rewrites on every push.

What a removal frees: untagged manifests are kept by garbage collection unless it deletes
them (`--delete-untagged`, `storage.gc.deleteuntagged`), so the bytes a plan reports are
what such a collection frees once the tags are gone: every blob (manifests included) that
only the removed tags reach, each blob once, whatever repository it is in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from dockyard.config.retention import RetentionConfig, RetentionRule
from dockyard.registry import layout
from dockyard.registry.errors import ManifestUnknown
from dockyard.registry.reference import Digest
from dockyard.registry.registry import Registry
from dockyard.registry.reindex import synchronize
from dockyard.registry.usage import kept_manifests

log = logging.getLogger("dockyard.retention")
STAT_BATCH = 1024


@dataclass(frozen=True, slots=True)
class TagRemoval:
    repository: str
    tag: str
    digest: str
    pushed: float | None  # None: the store could not say either
    rule: str  # the rule that removes it, described


@dataclass
class PrunePlan:
    removals: list[TagRemoval] = field(default_factory=list)
    repositories: int = 0  # repositories a rule applies to
    tags: int = 0  # tags of those
    freed_bytes: int = 0  # by a collection deleting untagged manifests, once they are gone
    freed_blobs: int = 0


async def plan_prune(registry: Registry, policy: RetentionConfig, now: float | None = None
                     ) -> PrunePlan:
    """The tags `policy` removes now, and what a collection then frees. The index is first
    brought in line with the store: another registry may have pushed or deleted tags."""
    now = time.time() if now is None else now
    await synchronize(registry.driver, registry.index)
    plan = PrunePlan()
    remaining: dict[str, list[tuple[str, str]]] = {}  # repository -> (tag, digest) kept
    for name in await registry.index.repositories():
        rule = policy.rule_for(name)
        if rule is None:
            continue
        plan.repositories += 1
        tags = await _push_times(registry, name)
        plan.tags += len(tags)
        going = _removed(name, rule, policy, tags, now)
        plan.removals += going
        gone = {removal.tag for removal in going}
        remaining[name] = [(tag, digest) for tag, digest, _ in tags if tag not in gone]
    if plan.removals:
        plan.freed_blobs, plan.freed_bytes = await _freed(registry, remaining)
    return plan


async def _push_times(registry: Registry, repository: str
                      ) -> list[tuple[str, str, float | None]]:
    """(tag, digest, push time) of every tag: the index's, else the tag link's mtime."""
    rows = await registry.index.tag_push_times(repository)
    unknown = [tag for tag, _, pushed in rows if pushed is None]
    stated: dict[str, float | None] = {}
    for start in range(0, len(unknown), STAT_BATCH):
        batch = unknown[start:start + STAT_BATCH]
        infos = await registry.driver.stat_many(
            [layout.tag_current_link(repository, tag) for tag in batch])
        stated.update({tag: None if info is None else info.modified
                       for tag, info in zip(batch, infos, strict=True)})
    return [(tag, digest, pushed if pushed is not None else stated.get(tag))
            for tag, digest, pushed in rows]


def _removed(repository: str, rule: RetentionRule, policy: RetentionConfig,
             tags: Sequence[tuple[str, str, float | None]], now: float) -> list[TagRemoval]:
    # Newest first; a tag with no known time counts as the oldest (it is never kept by
    # `keeplast` ahead of one whose push is known, and never removed by `olderthan`).
    ordered = sorted(tags, key=lambda row: (-(row[2] or 0.0), row[0]))
    recent = {tag for tag, _, _ in ordered[:rule.keep_last]} if rule.keep_last is not None \
        else set()
    described = rule.describe()
    removals = []
    for tag, digest, pushed in ordered:
        if policy.protect is not None and policy.protect.fullmatch(tag):
            continue
        if rule.keep_tags is not None and rule.keep_tags.fullmatch(tag):
            continue
        if tag in recent:
            continue
        if rule.older_than is not None and (pushed is None or now - pushed < rule.older_than):
            continue
        removals.append(TagRemoval(repository, tag, digest, pushed, described))
    return removals


async def _freed(registry: Registry, remaining: dict[str, list[tuple[str, str]]]
                 ) -> tuple[int, int]:
    """(blobs, bytes) a collection deleting untagged manifests frees once only the tags
    in `remaining` are left of the repositories it names (the others keep all theirs)."""
    index = registry.index
    manifests = await index.manifest_entries()
    references = await index.all_references()
    tagged = await index.all_tagged()
    after = [(repository, digest) for repository, digest in tagged
             if repository not in remaining]
    after += [(repository, digest) for repository, kept in remaining.items()
              for _, digest in kept]
    before_digests = _reached(kept_manifests(tagged, manifests, references), references)
    after_digests = _reached(kept_manifests(after, manifests, references), references)
    freed = sorted(before_digests - after_digests)
    size = 0
    count = 0
    for start in range(0, len(freed), STAT_BATCH):
        batch = freed[start:start + STAT_BATCH]
        infos = await registry.driver.stat_many(
            [layout.blob_data(Digest.parse(digest)) for digest in batch])
        for info in infos:
            if info is not None and not info.is_dir:
                count += 1
                size += info.size
    return count, size


def _reached(kept: set[tuple[str, str]], references: dict[tuple[str, str], list[str]]
             ) -> set[str]:
    """Every digest the kept manifests are or need."""
    digests: set[str] = set()
    for item in kept:
        digests.add(item[1])
        digests.update(references.get(item, ()))
    return digests


async def apply_prune(registry: Registry, plan: PrunePlan) -> list[TagRemoval]:
    """Remove the plan's tags, each only if it still names the manifest the plan saw (a
    tag pushed again since stays); the removals made."""
    await registry.check_writable()
    done = []
    for removal in plan.removals:
        repository = registry.repository(removal.repository)
        try:
            await repository.tags.untag(removal.tag, Digest.parse(removal.digest))
        except ManifestUnknown:
            log.info("retention: %s:%s was pushed again or removed meanwhile; kept",
                     removal.repository, removal.tag)
            continue
        log.info("retention: removed tag %s:%s (%s; rule: %s)", removal.repository,
                 removal.tag, removal.digest, removal.rule)
        done.append(removal)
    return done


async def prune_by_policy(registry: Registry, policy: RetentionConfig) -> list[TagRemoval]:
    """Plan and remove (for the garbage collection schedule); one worker at a time."""
    async with registry.index.locks.hold_if_free("retention") as mine:
        if not mine:
            return []
        plan = await plan_prune(registry, policy)
        removed = await apply_prune(registry, plan)
        if removed:
            log.info("retention: removed %d tags of %d in %d repositories", len(removed),
                     plan.tags, plan.repositories)
        return removed
