"""`retention` (dockyard only): which tags to remove by policy, by `dockyard prune` and before
each scheduled garbage collection.

    retention:
      protect: 'latest|stable'     # never removed, whatever a rule says
      rules:
        - repositories: 'ci/*'       # glob: `*` matches any characters, `/` included
          keeplast: 10               # the 10 most recently pushed tags stay
          keeptags: 'release-.*'     # tags matching this (in full) stay
          olderthan: 720h            # only tags pushed longer ago than this may go

A repository follows the first rule whose `repositories` matches it (none: nothing of it
is removed). Under that rule a tag is removed when all of these hold: it does not match
`protect` or `keeptags`, it is not among the `keeplast` most recently pushed, and it was
pushed longer ago than `olderthan`. A rule must set `keeplast` or `olderthan`, so that no
rule removes every tag by mistake.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from dockyard.config.entries import mapping_entries

WHERE = "retention."
RULE_KEYS = frozenset({"repositories", "keeplast", "keeptags", "olderthan"})


class RetentionConfigError(ValueError):
    pass


@dataclass(frozen=True)
class RetentionRule:
    repositories: str
    keep_last: int | None = None
    keep_tags: re.Pattern[str] | None = None
    older_than: float | None = None  # seconds

    def matches(self, repository: str) -> bool:
        return fnmatch.fnmatchcase(repository, self.repositories)

    def describe(self) -> str:
        parts = [f"repositories {self.repositories}"]
        if self.keep_last is not None:
            parts.append(f"keep last {self.keep_last}")
        if self.keep_tags is not None:
            parts.append(f"keep tags {self.keep_tags.pattern}")
        if self.older_than is not None:
            parts.append(f"older than {_duration(self.older_than)}")
        return ", ".join(parts)


@dataclass(frozen=True)
class RetentionConfig:
    rules: tuple[RetentionRule, ...] = ()
    protect: re.Pattern[str] | None = None

    def rule_for(self, repository: str) -> RetentionRule | None:
        return next((rule for rule in self.rules if rule.matches(repository)), None)


Duration = Callable[[Any, str], float]


def retention_config(section: Mapping[str, Any], as_duration: Duration) -> RetentionConfig:
    unknown = sorted(set(section) - {"protect", "rules"})
    if unknown:
        raise RetentionConfigError(f"{WHERE}{unknown[0]}: unknown key (retention takes "
                                   f"protect and rules)")
    protect = _pattern(section.get("protect"), f"{WHERE}protect")
    rules = tuple(_rule(entry, where, as_duration) for where, entry in mapping_entries(
        section.get("rules"), f"{WHERE}rules", RULE_KEYS, "a rule", RetentionConfigError))
    return RetentionConfig(rules, protect)


def _rule(entry: dict[str, Any], where: str, as_duration: Duration) -> RetentionRule:
    repositories = entry.get("repositories")
    if not isinstance(repositories, str) or not repositories:
        raise RetentionConfigError(f"{where}repositories: expected a pattern such as 'ci/*', "
                                   f"got {repositories!r}")
    keep_last = entry.get("keeplast")
    if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int)
                                  or keep_last < 0):
        raise RetentionConfigError(f"{where}keeplast: expected a whole number, got "
                                   f"{keep_last!r}")
    older = entry.get("olderthan")
    if older is not None and not (isinstance(older, str) and re.search(r"[a-z]", older)):
        # A bare number is a duration in nanoseconds to distribution's parser: as an age,
        # that would make every tag old enough to go.
        raise RetentionConfigError(f"{where}olderthan: expected a duration with its unit, "
                                   f"such as 720h, got {older!r}")
    older_than = None if older is None else as_duration(older, f"{where}olderthan")
    if keep_last is None and older_than is None:
        raise RetentionConfigError(f"{where[:-1]}: set keeplast or olderthan (or both), so "
                                   f"that the rule cannot remove every tag")
    return RetentionRule(repositories, keep_last,
                         _pattern(entry.get("keeptags"), f"{where}keeptags"), older_than)


def _pattern(value: Any, where: str) -> re.Pattern[str] | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise RetentionConfigError(f"{where}: expected a regular expression, got {value!r}")
    try:
        return re.compile(value)
    except re.error as error:
        raise RetentionConfigError(f"{where}: not a regular expression: {error}") from None


def _duration(seconds: float) -> str:
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    return f"{seconds:g}s"
