"""Read-only maintenance mode: storage.maintenance.readonly at start-up, switchable live.

The switch lives in the index's meta table, which every worker and every instance sharing
the index already reads, so one switch reaches them all and outlives restarts. Only what
would write asks (each write request, a collection's start, the background upkeep, the
web UI's buttons): one primary-key lookup each, with no cache, so the next write anywhere
after the switch's commit sees it. Reads never ask.

A live switch away from what the configuration says holds until switched back, restarts
included: a registry put in read-only for a migration does not re-open by itself. Switching
to what the configuration says hands the decision back to it, so a later edit of the
configuration takes effect on the next start.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from dockyard.index.base import Index, IndexUnavailable, IndexWrite
from dockyard.registry.errors import ReadOnly

log = logging.getLogger("dockyard.maintenance")
READ_ONLY_KEY = "maintenance_readonly"


@dataclass(frozen=True, slots=True)
class ReadOnlySwitch:
    """The last live switch: what it asked for, when, by whom, and whether it overrides
    the configuration (it does not once switched back to what the configuration says)."""

    enabled: bool
    at: str
    by: str | None
    overrides: bool

    def as_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "at": self.at, "by": self.by}


@dataclass(frozen=True, slots=True)
class ReadOnlyState:
    enabled: bool
    configured: bool  # storage.maintenance.readonly.enabled of this instance
    switch: ReadOnlySwitch | None

    @property
    def source(self) -> str:
        return "live" if self.switch is not None and self.switch.overrides else "config"

    def as_dict(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "source": self.source, "configured": self.configured,
                "switched": None if self.switch is None else self.switch.as_dict()}


def parse_switch(text: str | None) -> ReadOnlySwitch | None:
    """The switch as stored; None if never switched (or unreadable: then the configuration
    decides, and the next switch overwrites it)."""
    if not text:
        return None
    try:
        fields = json.loads(text)
        return ReadOnlySwitch(bool(fields["enabled"]), str(fields["at"]),
                              fields.get("by"), bool(fields["overrides"]))
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring an unreadable %s in the index: %.100r", READ_ONLY_KEY, text)
        return None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ReadOnlyMode:
    def __init__(self, index: Index, configured: bool) -> None:
        self.index = index
        self.configured = configured
        # What the index said last: used while the index cannot be reached, so an upload's
        # chunks keep going through a database blip as they did before the switch existed.
        self._last_known = configured

    def state_of(self, text: str | None) -> ReadOnlyState:
        switch = parse_switch(text)
        enabled = switch.enabled if switch is not None and switch.overrides \
            else self.configured
        return ReadOnlyState(enabled, self.configured, switch)

    async def state(self) -> ReadOnlyState:
        state = self.state_of(await self.index.get_meta(READ_ONLY_KEY))
        self._last_known = state.enabled
        return state

    async def is_on(self) -> bool:
        try:
            return (await self.state()).enabled
        except IndexUnavailable:
            return self._last_known

    async def check_writable(self, message: str | None = None) -> None:
        if await self.is_on():
            raise ReadOnly(message)

    async def is_on_in(self, db: IndexWrite) -> bool:
        """The state as a write transaction sees it: exclusive against a switch, so what the
        transaction then writes cannot follow a switch to read-only."""
        return self.state_of(await db.get_meta(READ_ONLY_KEY)).enabled

    async def switch(self, enabled: bool, by: str | None) -> ReadOnlyState:
        record = ReadOnlySwitch(enabled, _now(), by, overrides=enabled != self.configured)
        fields = {"enabled": record.enabled, "at": record.at, "by": record.by,
                  "overrides": record.overrides}
        async with self.index.writing() as db:
            await db.set_meta(READ_ONLY_KEY, json.dumps(fields))
        self._last_known = enabled
        return ReadOnlyState(enabled, self.configured, record)
