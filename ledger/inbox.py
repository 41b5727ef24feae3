"""The webhook inbox: every delivery recorded once per (provider, event id)."""

from __future__ import annotations

import hashlib

from sqlalchemy import update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.schema import webhook_events


async def record_delivery(
    session: AsyncSession,
    *,
    provider: str,
    event_id: str,
    event_type: str | None,
    payload: str,
    outcome: str = "applied",
    detail: str | None = None,
) -> int | None:
    """Insert the delivery; its id, or None when this (provider, event_id) was recorded before.

    A concurrent copy waits on the first one's uncommitted row and then sees the conflict, so of
    any number of simultaneous deliveries exactly one proceeds.
    """
    inserted = await session.scalar(
        insert(webhook_events)
        .values(
            provider=provider,
            event_id=event_id,
            event_type=event_type,
            outcome=outcome,
            detail=detail,
            payload=payload,
        )
        .on_conflict_do_nothing(constraint="webhook_events_once")
        .returning(webhook_events.c.id)
    )
    return int(inserted) if inserted is not None else None


async def set_outcome(
    session: AsyncSession, delivery_id: int, outcome: str, detail: str | None = None
) -> None:
    await session.execute(
        update(webhook_events)
        .where(webhook_events.c.id == delivery_id)
        .values(outcome=outcome, detail=detail)
    )


def malformed_event_id(body: bytes) -> str:
    """An id for a delivery we could not parse: the same bytes are recorded once."""
    return "malformed:" + hashlib.sha256(body).hexdigest()
