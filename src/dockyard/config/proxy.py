"""`proxy`: the pull-through cache. distribution's keys (`remoteurl`, `username`,
`password`, `ttl`) make the whole registry a cache of one upstream; dockyard's `upstreams`
list puts each upstream under a name prefix of its own, beside repositories pushed here.
distribution's form is the special case of one upstream with an empty prefix."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from dockyard.config.entries import mapping_entries
from dockyard.config.model import ProxyConfig, UpstreamConfig

WHERE = "proxy."
DEFAULT_TTL = 168 * 3600.0  # distribution's: a week
ENTRY_KEYS = frozenset({"prefix", "remoteurl", "username", "password", "ttl"})
# A prefix is one or more path components of a repository name.
PREFIX = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)"
                    r"[a-z0-9]+)*)*")


class ProxyConfigError(ValueError):
    pass


Duration = Callable[[Any, str], float]


def proxy_config(section: Mapping[str, Any], as_duration: Duration) -> ProxyConfig | None:
    """The cache's settings, or None when the section names no upstream."""
    ttl = _ttl(section, WHERE, as_duration, DEFAULT_TTL)
    upstreams: list[UpstreamConfig] = []
    if section.get("remoteurl"):
        upstreams.append(_upstream(section, WHERE, "", ttl, as_duration))
    for where, entry in mapping_entries(section.get("upstreams"), f"{WHERE}upstreams",
                                        ENTRY_KEYS, "an upstream", ProxyConfigError):
        prefix = str(entry.get("prefix") or "").strip("/")
        if not PREFIX.fullmatch(prefix):
            raise ProxyConfigError(f"{where}prefix: a repository name's first components, "
                                   f"like hub or mirror/ghcr, got {entry.get('prefix')!r}")
        upstreams.append(_upstream(entry, where, prefix, ttl, as_duration))
    if not upstreams:
        return None
    prefixes = [upstream.prefix for upstream in upstreams]
    for prefix in prefixes:
        if prefixes.count(prefix) > 1:
            what = f"prefix {prefix!r}" if prefix else "proxy.remoteurl"
            raise ProxyConfigError(f"{WHERE}upstreams: {what} is given twice")
    return ProxyConfig(
        upstreams=tuple(upstreams),
        tag_freshness=_ttl(section, WHERE, as_duration, 0.0, key="tagfreshness"),
        timeout=_ttl(section, WHERE, as_duration, 30.0, key="timeout") or 30.0,
    )


def _upstream(entry: Mapping[str, Any], where: str, prefix: str, default_ttl: float,
              as_duration: Duration) -> UpstreamConfig:
    url = str(entry.get("remoteurl") or "").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProxyConfigError(f"{where}remoteurl: expected an http(s) URL like "
                               f"https://registry-1.docker.io, got {entry.get('remoteurl')!r}")
    username = str(entry.get("username") or "")
    password = str(entry.get("password") or "")
    if bool(username) != bool(password):
        given, missing = ("username", "password") if username else ("password", "username")
        raise ProxyConfigError(f"{where}{missing}: {given} is set, so {missing} is needed")
    return UpstreamConfig(prefix=prefix, remoteurl=url, username=username or None,
                          password=password or None,
                          ttl=_ttl(entry, where, as_duration, default_ttl))


def _ttl(section: Mapping[str, Any], where: str, as_duration: Duration, default: float,
         key: str = "ttl") -> float:
    value = section.get(key)
    if value in (None, ""):
        return default
    seconds = as_duration(value, f"{where}{key}")
    if seconds < 0:
        raise ProxyConfigError(f"{where}{key}: must not be negative, got {value!r}")
    return seconds
