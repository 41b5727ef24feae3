"""The outbox: follow-ups written in the transaction whose commit they follow (jobs.outbox
drains it). A tip's row is written by a trigger on `tips` (migration 0011); other rows by
`add`, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

TOPICS = ("tip", "receipt.email", "push.tip", "payment.verify", "payout.send")

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
