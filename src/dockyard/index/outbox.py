"""The notification outbox: events written with the changes they describe, read back in
order by each endpoint's sender, and dropped once every endpoint has them."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from dockyard.index.base import DeliveryState

Row = tuple[Any, ...]


async def insert_events(db: Any, bodies: Sequence[str]) -> None:
    """Append events (JSON texts) in a write transaction the caller holds; ids follow the
    order of commits, as every writer takes the index's write lock first."""
    if bodies:
        await db.execute_many("INSERT INTO events (body) VALUES (?)",
                              [(body,) for body in bodies])


class OutboxQueries:
    """Mixed into the SQL index."""

    @abstractmethod
    async def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    @abstractmethod
    def writing(self) -> AbstractAsyncContextManager[Any]: ...

    async def add_events(self, bodies: Sequence[str]) -> None:
        """Events that describe no change of the index (pulls), in a transaction alone."""
        if bodies:
            async with self.writing() as db:
                await db.add_events(bodies)

    async def events_after(self, after: int, limit: int) -> list[tuple[int, str]]:
        rows = await self._all("SELECT id, body FROM events WHERE id > ? ORDER BY id LIMIT ?",
                               (after, limit))
        return [(int(row[0]), str(row[1])) for row in rows]

    async def count_events_after(self, after: int) -> int:
        rows = await self._all("SELECT count(*) FROM events WHERE id > ?", (after,))
        return int(rows[0][0])

    async def delivery_states(self) -> dict[str, DeliveryState]:
        rows = await self._all(
            "SELECT endpoint, delivered, sent, failures, last_error, last_attempt, "
            "last_success FROM event_deliveries ORDER BY endpoint")
        return {str(row[0]): DeliveryState(str(row[0]), int(row[1]), int(row[2]), int(row[3]),
                                           row[4], row[5], row[6]) for row in rows}

    async def start_delivery(self, endpoint: str) -> DeliveryState:
        """The endpoint's cursor; a new endpoint starts after the newest event (it gets
        what happens from now on, not the history before it was configured)."""
        async with self.writing() as db:
            await db.db.execute(
                "INSERT INTO event_deliveries (endpoint, delivered) "
                "SELECT ?, COALESCE(MAX(id), 0) FROM events WHERE true "
                "ON CONFLICT (endpoint) DO NOTHING",  # (WHERE: how SQLite parses an upsert)
                (endpoint,))
        return (await self.delivery_states())[endpoint]

    async def record_delivery(self, state: DeliveryState) -> None:
        async with self.writing() as db:
            await db.db.execute(
                "UPDATE event_deliveries SET delivered = ?, sent = ?, failures = ?, "
                "last_error = ?, last_attempt = ?, last_success = ? WHERE endpoint = ?",
                (state.delivered, state.sent, state.failures, state.last_error,
                 state.last_attempt, state.last_success, state.endpoint))

    async def drop_delivered_events(self, endpoints: Sequence[str]) -> None:
        """Drop the events every one of `endpoints` has been given."""
        if not endpoints:
            return
        marks = ", ".join("?" for _ in endpoints)
        async with self.writing() as db:
            row = await db.db.fetch_one(
                f"SELECT MIN(delivered), COUNT(*) FROM event_deliveries "
                f"WHERE endpoint IN ({marks})", tuple(endpoints))
            if row is None or row[0] is None or int(row[1]) < len(endpoints):
                return
            await db.db.execute("DELETE FROM events WHERE id <= ?", (int(row[0]),))
