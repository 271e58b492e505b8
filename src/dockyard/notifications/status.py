"""How far each notification endpoint has been given the registry's events: for the admin
API (`GET /admin/notifications`) and `dockyard notifications`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from dockyard.config.notifications import EndpointConfig
from dockyard.index.base import Index


def _when(moment: float | None) -> str | None:
    if moment is None:
        return None
    return datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")


def shown_url(url: str) -> str:
    """The endpoint's URL without what may be a secret (user and password, the query)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


async def delivery_report(index: Index, endpoints: tuple[EndpointConfig, ...]
                          ) -> list[dict[str, Any]]:
    states = await index.delivery_states()
    report = []
    for endpoint in endpoints:
        state = states.get(endpoint.name)
        entry: dict[str, Any] = {"name": endpoint.name, "url": shown_url(endpoint.url)}
        if state is None:
            # Its sender has not started yet; it will start after the newest event.
            entry.update(pending=0, sent=0, failures=0, lastError=None, lastAttempt=None,
                         lastSuccess=None, oldestPending=None)
            report.append(entry)
            continue
        pending = await index.count_events_after(state.delivered)
        oldest = None
        if pending:
            first = await index.events_after(state.delivered, 1)
            if first:
                oldest = json.loads(first[0][1]).get("timestamp")
        entry.update(pending=pending, sent=state.sent, failures=state.failures,
                     lastError=state.last_error, lastAttempt=_when(state.last_attempt),
                     lastSuccess=_when(state.last_success), oldestPending=oldest)
        report.append(entry)
    return report
