"""Settings that are lists of mappings (proxy upstreams, notification endpoints, retention
rules): each entry checked to be a mapping of known keys, mistakes named by key path."""

from __future__ import annotations

from typing import Any


def mapping_entries(value: Any, where: str, keys: frozenset[str], noun: str,
                    error: type[Exception]) -> list[tuple[str, dict[str, Any]]]:
    """(key path prefix such as `proxy.upstreams[0].`, entry) of each entry of the list
    `value` at `where`; `error` naming the key if the list, an entry or a key is wrong."""
    if not value:
        return []
    if not isinstance(value, list):
        raise error(f"{where}: expected a list of mappings, got {value!r}")
    entries = []
    for number, entry in enumerate(value):
        at = f"{where}[{number}]"
        if not isinstance(entry, dict):
            raise error(f"{at}: expected a mapping, got {entry!r}")
        unknown = sorted(set(entry) - keys)
        if unknown:
            raise error(f"{at}.{unknown[0]}: unknown key ({noun} takes "
                        f"{', '.join(sorted(keys))})")
        entries.append((f"{at}.", entry))
    return entries
