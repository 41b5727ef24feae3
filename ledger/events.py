"""The event log: rows written in the money's transaction, published after it commits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.schema import events


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    user_id: str
    seq: int
    type: str
    occurred_at: datetime
    data: Mapping[str, Any]

    def envelope(self) -> dict[str, Any]:
        """What a client receives: `id` is unique, `seq` orders one user's events."""
        return {
            "id": self.id,
            "seq": self.seq,
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat(),
            "data": dict(self.data),
        }


async def record_events(
    session: AsyncSession, pending: Sequence[tuple[str, str, Mapping[str, Any]]]
) -> list[Event]:
    """Write (user_id, type, data) events in the caller's transaction.

    Each user's events are numbered from that user's row, which stays locked until the commit:
    so a user's seq order is the order in which their events committed, and replay by seq can
    never skip an event that committed late. Users are locked in sorted order (no deadlocks).
    """
    seqs: dict[str, list[int]] = {}
    counts: dict[str, int] = {}
    for user_id, _, _ in pending:
        counts[user_id] = counts.get(user_id, 0) + 1
    for user_id in sorted(counts):
        top = await session.scalar(
            text("UPDATE users SET event_seq = event_seq + :n WHERE id = :id RETURNING event_seq"),
            {"id": user_id, "n": counts[user_id]},
        )
        assert top is not None, f"unknown user {user_id}"
        seqs[user_id] = list(range(top - counts[user_id] + 1, top + 1))
    rows = [
        {"user_id": user_id, "seq": seqs[user_id].pop(0), "type": type_, "data": dict(data)}
        for user_id, type_, data in pending
    ]
    result = await session.execute(
        events.insert().returning(
            events.c.id,
            events.c.user_id,
            events.c.seq,
            events.c.type,
            events.c.occurred_at,
            events.c.data,
            sort_by_parameter_order=True,
        ),
        rows,
    )
    return [
        Event(
            id=r.id,
            user_id=r.user_id,
            seq=r.seq,
            type=r.type,
            occurred_at=r.occurred_at,
            data=r.data,
        )
        for r in result
    ]


async def mark_published(session: AsyncSession, event_ids: Sequence[int]) -> None:
    await session.execute(
        update(events)
        .where(events.c.id.in_(event_ids), events.c.published_at.is_(None))
        .values(published_at=text("now()"))
    )
