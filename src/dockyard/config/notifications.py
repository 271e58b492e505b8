"""`notifications`: distribution's webhooks. Each endpoint gets every event of the registry
(pushes, pulls, mounts, deletes) POSTed as distribution's event envelope, except the media
types and actions it ignores."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dockyard.config.entries import mapping_entries

WHERE = "notifications."
ACTIONS = frozenset({"push", "pull", "mount", "delete"})
ENDPOINT_KEYS = frozenset({"name", "url", "headers", "timeout", "threshold", "backoff",
                           "disabled", "ignoredmediatypes", "ignore",
                           # dockyard only:
                           "maxevents"})
# distribution's defaults for an endpoint that leaves them out (or sets zero).
DEFAULT_TIMEOUT = 1.0
DEFAULT_THRESHOLD = 10
DEFAULT_BACKOFF = 1.0


class NotificationsConfigError(ValueError):
    pass


@dataclass(frozen=True)
class EndpointConfig:
    name: str
    url: str
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = DEFAULT_TIMEOUT
    # After this many failures in a row, wait `backoff` between attempts.
    threshold: int = DEFAULT_THRESHOLD
    backoff: float = DEFAULT_BACKOFF
    ignored_media_types: frozenset[str] = frozenset()
    ignored_actions: frozenset[str] = frozenset()
    # Events an envelope may hold when several wait (distribution sends one at a time;
    # receivers that read every event of the list catch up far faster with more).
    max_events: int = 1

    def wants(self, action: str, media_type: str | None) -> bool:
        return action not in self.ignored_actions and \
            (media_type is None or media_type not in self.ignored_media_types)


@dataclass(frozen=True)
class NotificationsConfig:
    endpoints: tuple[EndpointConfig, ...] = ()  # the enabled ones
    # Whether a manifest's events list the descriptors it references.
    include_references: bool = False

    def wants(self, action: str, media_type: str | None) -> bool:
        """Whether some endpoint takes such an event (else it is not even recorded)."""
        return any(endpoint.wants(action, media_type) for endpoint in self.endpoints)


Duration = Callable[[Any, str], float]
Flag = Callable[[Mapping[str, Any], str, str, bool], bool]


@dataclass
class _Reader:
    as_duration: Duration
    as_bool: Flag
    names: set[str] = field(default_factory=set)

    def endpoint(self, entry: dict[str, Any], where: str) -> EndpointConfig | None:
        name = str(entry.get("name") or "").strip()
        if not name:
            raise NotificationsConfigError(f"{where}name: every endpoint needs a name")
        if name in self.names:
            raise NotificationsConfigError(f"{where}name: {name!r} is given twice")
        self.names.add(name)
        if self.as_bool(entry, "disabled", where, False):
            return None
        url = str(entry.get("url") or "")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise NotificationsConfigError(f"{where}url: expected an http:// or https:// URL, "
                                           f"got {url!r}")
        ignore = entry.get("ignore") or {}
        if not isinstance(ignore, dict) or set(ignore) - {"mediatypes", "actions"}:
            raise NotificationsConfigError(
                f"{where}ignore: expected a mapping with mediatypes and actions, got {ignore!r}")
        actions = _strings(ignore.get("actions"), f"{where}ignore.actions")
        wrong = sorted(set(actions) - ACTIONS)
        if wrong:
            raise NotificationsConfigError(
                f"{where}ignore.actions: {wrong[0]!r} is not one of {', '.join(sorted(ACTIONS))}")
        media_types = (*_strings(entry.get("ignoredmediatypes"), f"{where}ignoredmediatypes"),
                       *_strings(ignore.get("mediatypes"), f"{where}ignore.mediatypes"))
        threshold = entry.get("threshold") or 0
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
            raise NotificationsConfigError(f"{where}threshold: expected a whole number, got "
                                           f"{threshold!r}")
        max_events = entry.get("maxevents", 1)
        if isinstance(max_events, bool) or not isinstance(max_events, int) \
                or not 1 <= max_events <= 1000:
            raise NotificationsConfigError(f"{where}maxevents: expected a whole number from "
                                           f"1 to 1000, got {max_events!r}")
        return EndpointConfig(
            name=name, url=url, headers=_headers(entry.get("headers"), f"{where}headers"),
            timeout=self._duration(entry, "timeout", where, DEFAULT_TIMEOUT),
            threshold=threshold or DEFAULT_THRESHOLD,
            backoff=self._duration(entry, "backoff", where, DEFAULT_BACKOFF),
            ignored_media_types=frozenset(media_types), ignored_actions=frozenset(actions),
            max_events=max_events)

    def _duration(self, entry: Mapping[str, Any], key: str, where: str, default: float
                  ) -> float:
        value = entry.get(key)
        if value in (None, "", 0):
            return default
        seconds = self.as_duration(value, f"{where}{key}")
        return seconds if seconds > 0 else default


def notifications_config(section: Mapping[str, Any], as_duration: Duration, as_bool: Flag
                         ) -> NotificationsConfig:
    events = section.get("events") or {}
    if not isinstance(events, dict):
        raise NotificationsConfigError(f"{WHERE}events: expected a mapping, got {events!r}")
    reader = _Reader(as_duration, as_bool)
    endpoints = [reader.endpoint(entry, where) for where, entry in mapping_entries(
        section.get("endpoints"), f"{WHERE}endpoints", ENDPOINT_KEYS, "an endpoint",
        NotificationsConfigError)]
    return NotificationsConfig(
        tuple(endpoint for endpoint in endpoints if endpoint is not None),
        as_bool(events, "includereferences", f"{WHERE}events.", False))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise NotificationsConfigError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


def _headers(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    """distribution's `headers`: a name to a list of values (a single string is taken too)."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise NotificationsConfigError(f"{where}: expected a mapping of names to lists of "
                                       f"values, got {value!r}")
    pairs: list[tuple[str, str]] = []
    for name, values in value.items():
        items = [values] if isinstance(values, str) else values
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise NotificationsConfigError(f"{where}.{name}: expected a list of strings, got "
                                           f"{values!r}")
        if any(ch in item for item in (str(name), *items) for ch in "\r\n"):
            raise NotificationsConfigError(f"{where}.{name}: a header may not hold a line break")
        pairs.extend((str(name), item) for item in items)
    return tuple(pairs)
