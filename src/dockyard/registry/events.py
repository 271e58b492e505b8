"""Notification events: what happened (a push, pull, mount or delete), written as
distribution's event records so receivers built for it read them unchanged.

The registry writes each event into the index's outbox in the transaction of the change it
describes (notify.delivery sends them). What an event says of the request that caused it
(id, client, user) comes from `current_origin`, which the HTTP layer sets per request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dockyard.config.notifications import NotificationsConfig
from dockyard.index.base import Index

log = logging.getLogger("dockyard.notifications")

# Blobs have no media type of their own in the store: distribution's events say this.
BLOB_MEDIA_TYPE = "application/octet-stream"
DESCRIPTOR_FIELDS = ("mediaType", "size", "digest", "urls", "annotations", "platform")


@dataclass(frozen=True, slots=True)
class EventOrigin:
    """The request behind an event (distribution's `request` and `actor` records)."""

    request_id: str = ""
    addr: str = ""
    host: str = ""
    method: str = ""
    user_agent: str = ""
    actor: str | None = None
    # scheme://host[/prefix] the registry was reached by, for the target's URL.
    base_url: str = ""


# Called when an event is made, so it sees the request as it is then (its user is known
# only once authentication has run).
current_origin: ContextVar[Callable[[], EventOrigin] | None] = ContextVar(
    "event_origin", default=None)


def _origin() -> EventOrigin:
    make = current_origin.get()
    return make() if make is not None else EventOrigin()


def _event_id() -> str:
    return str(uuid.UUID(bytes=os.urandom(16), version=4))


def _timestamp() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class PullEvents:
    """Pull events, written a few at a time: they describe no change to be atomic with, and
    one write transaction for every GET would cost more than the GET. A process killed
    loses the last FLUSH_DELAY of them at most."""

    FLUSH_DELAY = 0.01

    def __init__(self, index: Index) -> None:
        self.index = index
        self._waiting: list[str] = []
        self._flushing: asyncio.Task[None] | None = None

    def add(self, bodies: list[str]) -> None:
        self._waiting.extend(bodies)
        if self._flushing is None:
            self._flushing = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        try:
            await asyncio.sleep(self.FLUSH_DELAY)
            await self.flush()
        finally:
            self._flushing = None

    async def flush(self) -> None:
        bodies, self._waiting = self._waiting, []
        if not bodies:
            return
        try:
            await self.index.add_events(bodies)
        except Exception as error:  # the index is down: keep them for the next flush
            log.warning("notifications: %d pull events not written yet: %s", len(bodies),
                        error)
            self._waiting[:0] = bodies


class EventLog:
    """Makes the events the registry's endpoints want; none at all when there are none."""

    def __init__(self, config: NotificationsConfig | None = None, source_addr: str = "",
                 instance_id: str | None = None) -> None:
        self.config = config or NotificationsConfig()
        self.endpoints = self.config.endpoints
        self.enabled = bool(self.endpoints)
        self.include_references = self.config.include_references
        self.source = {"addr": source_addr or socket.gethostname(),
                       "instanceID": instance_id or _event_id()}
        self._pulls: PullEvents | None = None

    def wants(self, action: str, media_type: str | None = None) -> bool:
        return self.enabled and self.config.wants(action, media_type)

    def pulled(self, index: Index, bodies: list[str]) -> None:
        """Write pull events (soon: see PullEvents)."""
        if bodies:
            if self._pulls is None:
                self._pulls = PullEvents(index)
            self._pulls.add(bodies)

    async def aclose(self) -> None:
        if self._pulls is not None:
            await self._pulls.flush()

    def _event(self, action: str, target: dict[str, Any]) -> str:
        origin = _origin()
        request: dict[str, str] = {"id": origin.request_id}
        if origin.addr:
            request["addr"] = origin.addr
        if origin.host:
            request["host"] = origin.host
        request["method"] = origin.method
        request["useragent"] = origin.user_agent
        return json.dumps({
            "id": _event_id(), "timestamp": _timestamp(), "action": action, "target": target,
            "request": request, "actor": {"name": origin.actor} if origin.actor else {},
            "source": self.source,
        }, separators=(",", ":"))

    def _url(self, repository: str, kind: str, digest: str) -> str | None:
        base = _origin().base_url
        return f"{base}/v2/{repository}/{kind}/{digest}" if base else None

    def manifest(self, action: str, repository: str, digest: str, media_type: str, size: int,
                 tag: str | None = None,
                 references: Iterable[Mapping[str, Any]] = ()) -> list[str]:
        """A manifest pushed or pulled (by `tag`, if it was named by one)."""
        if not self.wants(action, media_type):
            return []
        target: dict[str, Any] = {"mediaType": media_type, "size": size, "digest": digest,
                                  "length": size, "repository": repository}
        url = self._url(repository, "manifests", digest)
        if url:
            target["url"] = url
        if tag:
            target["tag"] = tag
        if self.include_references:
            described = [{key: item[key] for key in DESCRIPTOR_FIELDS if item.get(key)}
                         for item in references]
            if described:
                target["references"] = described
        return [self._event(action, target)]

    def blob(self, action: str, repository: str, digest: str, size: int,
             from_repository: str | None = None) -> list[str]:
        """A blob pushed, pulled, or mounted `from_repository`."""
        if not self.wants(action, BLOB_MEDIA_TYPE):
            return []
        target: dict[str, Any] = {"mediaType": BLOB_MEDIA_TYPE, "size": size,
                                  "digest": digest, "length": size, "repository": repository}
        if from_repository:
            target["fromRepository"] = from_repository
        url = self._url(repository, "blobs", digest)
        if url:
            target["url"] = url
        return [self._event(action, target)]

    def deleted(self, repository: str, digest: str | None = None, tag: str | None = None
                ) -> list[str]:
        """A manifest or blob (by digest), a tag, or a whole repository deleted."""
        if not self.wants("delete"):
            return []
        target: dict[str, Any] = {}
        if digest:
            target["digest"] = digest
        target["repository"] = repository
        if tag:
            target["tag"] = tag
        return [self._event("delete", target)]


def references_in(data: bytes) -> list[Mapping[str, Any]]:
    """The descriptors a manifest document references, as distribution lists them in
    events: an image's config and layers, an index's manifests."""
    try:
        document = json.loads(data)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    found: list[Any] = []
    if isinstance(document.get("manifests"), list):
        found = document["manifests"]
    else:
        if isinstance(document.get("config"), dict):
            found.append(document["config"])
        if isinstance(document.get("layers"), list):
            found.extend(document["layers"])
    return [item for item in found if isinstance(item, dict)]


NO_EVENTS = EventLog()
