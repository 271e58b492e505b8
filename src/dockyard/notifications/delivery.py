"""Delivery of the outbox's events to one endpoint: in order, at least once, across
restarts and worker processes.

Every worker runs a sender per endpoint, but only the one holding the endpoint's lock in
the index sends; the others wait to take over should its process die. The sender reads
the events after the endpoint's cursor and POSTs them as distribution does, an envelope
holding one event (with dockyard's `maxevents`, up to that many of those waiting); it moves
the cursor only once the endpoint has accepted them (2xx or 3xx). A failure is retried at
once up to the endpoint's threshold of failures in a row, then every `backoff`, for as
long as it takes: an endpoint that is down for an hour gets every event when it is back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Hashable, Iterator
from typing import Any

import httpx

from dockyard import __version__
from dockyard.config import Config
from dockyard.config.notifications import EndpointConfig
from dockyard.index.base import DeliveryState, Index
from dockyard.metrics import own
from dockyard.metrics.own import set_webhook_backlog

log = logging.getLogger("dockyard.notifications")

EVENTS_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
LOCK_PREFIX = "notifications:"
BATCH = 100
# How often a sender looks for new events (a cheap check of the index's commit counter
# first), and how often a waiting worker checks whether the sender's process went away.
POLL_INTERVAL = 0.02
TAKEOVER_INTERVAL = 1.0
# The smallest pause between two attempts, so a receiver refusing at once is not flooded.
RETRY_PAUSE = 0.05
# Delivered events are dropped from the index this often.
PRUNE_INTERVAL = 10.0
# How often the cursor is saved while events flow (and whenever the sender catches up).
SAVE_INTERVAL = 0.1


def envelope(bodies: list[str]) -> bytes:
    """distribution's event envelope around events kept as JSON texts (joined as they are,
    not parsed again: the sender's main cost when a backlog drains)."""
    return ('{"events":[' + ",".join(bodies) + "]}").encode()


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:500] if str(error) else type(error).__name__


class EndpointSender:
    def __init__(self, index: Index, endpoint: EndpointConfig, all_endpoints: list[str]
                 ) -> None:
        self.index = index
        self.endpoint = endpoint
        self.all_endpoints = all_endpoints  # whose cursors say what may be dropped
        headers: list[tuple[str, str]] = [("User-Agent", f"dockyard/{__version__}")]
        headers += endpoint.headers
        headers.append(("Content-Type", EVENTS_MEDIA_TYPE))
        # A blocking client in a thread: one event at a time (in order) over a kept-alive
        # connection, it sends three times as many events a second as httpx's async
        # client does here, which matters when a backlog drains.
        self.client = httpx.Client(headers=headers, timeout=endpoint.timeout,
                                   follow_redirects=False)
        self._pruned_at = 0.0

    async def run_forever(self) -> None:
        key = LOCK_PREFIX + self.endpoint.name
        try:
            while True:
                try:
                    async with self.index.locks.hold_if_free(key) as mine:
                        if mine:
                            await self._deliver()
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # the index went away: try again later
                    log.warning("notifications: endpoint %s: %s", self.endpoint.name,
                                _error_text(error))
                await asyncio.sleep(TAKEOVER_INTERVAL)
        finally:
            self.client.close()

    async def _deliver(self) -> None:
        state = saved = await self.index.start_delivery(self.endpoint.name)
        saved_at = time.monotonic()
        seen: Hashable = None
        while True:
            version = await self.index.version()
            if version == seen:
                if state != saved:  # caught up: say so
                    await self.index.record_delivery(state)
                    saved, saved_at = state, time.monotonic()
                    set_webhook_backlog(self.endpoint.name, 0)
                await asyncio.sleep(POLL_INTERVAL)
                continue
            batch = await self.index.events_after(state.delivered, BATCH)
            if len(batch) < BATCH:
                seen = version  # nothing more until the index changes
            for group in self._envelopes(batch):
                state = await self._send(state, group)
                # The cursor is saved every SAVE_INTERVAL while events flow: a sender
                # that dies sends again at most what it sent since (at least once).
                if time.monotonic() - saved_at >= SAVE_INTERVAL:
                    await self.index.record_delivery(state)
                    saved, saved_at = state, time.monotonic()
                    await self._report_backlog(state)
            if batch and time.monotonic() - self._pruned_at >= PRUNE_INTERVAL:
                self._pruned_at = time.monotonic()
                await self.index.drop_delivered_events(self.all_endpoints)

    async def _report_backlog(self, state: DeliveryState) -> None:
        """The events still to send, for the metrics (when they are on)."""
        if own.current is not None:
            set_webhook_backlog(self.endpoint.name,
                                await self.index.count_events_after(state.delivered))

    def _envelopes(self, batch: list[tuple[int, str]]) -> Iterator[list[tuple[int, str]]]:
        """The batch in envelopes of at most `maxevents` events; an event the endpoint
        ignores goes alone, to be skipped."""
        group: list[tuple[int, str]] = []
        filters = bool(self.endpoint.ignored_actions or self.endpoint.ignored_media_types)
        for event_id, body in batch:
            event: dict[str, Any] = json.loads(body) if filters else {}
            if filters and not self.endpoint.wants(event.get("action", ""),
                                                   event.get("target", {}).get("mediaType")):
                if group:
                    yield group
                    group = []
                yield [(event_id, "")]
                continue
            group.append((event_id, body))
            if len(group) >= self.endpoint.max_events:
                yield group
                group = []
        if group:
            yield group

    async def _send(self, state: DeliveryState, group: list[tuple[int, str]]
                    ) -> DeliveryState:
        last = group[-1][0]
        bodies = [body for _, body in group if body]
        if not bodies:  # ignored by this endpoint
            return dataclasses.replace(state, delivered=last)
        state = await self._send_until_accepted(state, bodies)
        return dataclasses.replace(state, delivered=last, sent=state.sent + len(bodies),
                                   failures=0, last_success=time.time())

    async def _send_until_accepted(self, state: DeliveryState, bodies: list[str]
                                   ) -> DeliveryState:
        payload = envelope(bodies)
        while True:
            attempt = time.time()
            try:
                response = await asyncio.to_thread(self.client.post, self.endpoint.url,
                                                   content=payload)
                if 200 <= response.status_code < 400:
                    return dataclasses.replace(state, last_attempt=attempt)
                error = f"{response.status_code} {response.reason_phrase}".strip()
            except httpx.HTTPError as failure:
                error = _error_text(failure)
            state = dataclasses.replace(state, failures=state.failures + 1, last_error=error,
                                        last_attempt=attempt)
            await self.index.record_delivery(state)
            await self._report_backlog(state)
            if state.failures == 1 or state.failures % 100 == 0:
                log.warning("notifications: endpoint %s: %s (%d failures in a row; "
                            "retrying)", self.endpoint.name, error, state.failures)
            pause = self.endpoint.backoff if state.failures >= self.endpoint.threshold \
                else RETRY_PAUSE
            await asyncio.sleep(pause)


def start_senders(index: Index, endpoints: tuple[EndpointConfig, ...]
                  ) -> list[asyncio.Task[None]]:
    names = [endpoint.name for endpoint in endpoints]
    return [asyncio.create_task(EndpointSender(index, endpoint, names).run_forever(),
                                name=f"notifications-{endpoint.name}")
            for endpoint in endpoints]


def senders_apart(config: Config) -> bool:
    """Whether the server sends from a thread of its own process rather than from its
    workers: where the index is shared (not the in-memory store's, which lives in its one
    worker), so a sender is never starved by a worker busy with requests."""
    return bool(config.notifications.endpoints) and config.storage.driver != "inmemory"


def send_apart(config: Config) -> threading.Thread:
    """Run the senders in a thread of this (the supervising) process, with an event loop
    and index connections of its own, until the process ends."""
    def run() -> None:
        async def senders() -> None:
            from dockyard.stores import make_index

            if config.http.debug is not None and config.http.debug.metrics_path is not None:
                own.enable()
            index = make_index(config)
            try:
                await asyncio.gather(*start_senders(index, config.notifications.endpoints))
            finally:
                await index.aclose()

        asyncio.run(senders())

    thread = threading.Thread(target=run, name="notifications", daemon=True)
    thread.start()
    return thread
