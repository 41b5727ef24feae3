"""The webhook inbox: every delivery recorded once per (provider, event id)."""

from __future__ import annotations

import hashlib

from sqlalchemy import BigInteger, bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

# Plain SQL on the webhook path: nothing for SQLAlchemy to key and compile per delivery.
_RECORD = text(
    """
    INSERT INTO webhook_events (provider, event_id, event_type, outcome, detail, payload)
    VALUES (:provider, :event_id, :event_type, :outcome, :detail, :payload)
    ON CONFLICT ON CONSTRAINT webhook_events_once DO NOTHING
    RETURNING id
    """
)
_OUTCOME = text(
    "UPDATE webhook_events SET outcome = :outcome, detail = :detail WHERE id = :id"
).bindparams(bindparam("id", type_=BigInteger))


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
        _RECORD,
        {
            "provider": provider,
            "event_id": event_id,
            "event_type": event_type,
            "outcome": outcome,
            "detail": detail,
            "payload": payload,
        },
    )
    return int(inserted) if inserted is not None else None


async def set_outcome(
    session: AsyncSession, delivery_id: int, outcome: str, detail: str | None = None
) -> None:
    await session.execute(_OUTCOME, {"id": delivery_id, "outcome": outcome, "detail": detail})


def malformed_event_id(body: bytes) -> str:
    """An id for a delivery we could not parse: the same bytes are recorded once."""
    return "malformed:" + hashlib.sha256(body).hexdigest()
