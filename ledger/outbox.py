"""The outbox: follow-ups written in the transaction whose commit they follow (jobs.outbox
drains it). The rows that follow an event (a tip's, a succeeded payment's, a requested payout's)
are written by the trigger on `events` (migration 0022); the drain's own next steps by `add`, in
its transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

TOPICS = ("tip", "receipt.email", "push.tip", "payment.verify", "payout.send", "refund.send")

_ADD = text(
    "INSERT INTO outbox (topic, ref) "
    "SELECT :topic, ref FROM unnest(CAST(:refs AS bigint[])) AS ref ORDER BY ref"
)


async def add(session: AsyncSession, topic: str, refs: Sequence[int]) -> None:
    """Rows (`topic`, each of `refs`), committed or rolled back with the caller's transaction."""
    if topic not in TOPICS:
        raise ValueError(f"no outbox topic {topic!r}")
    if refs:
        await session.execute(_ADD, {"topic": topic, "refs": list(refs)})
