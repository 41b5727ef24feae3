"""Receipts for tips: at most one per transfer, however often the job runs."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_ISSUE = text(
    """
    INSERT INTO receipts (transfer_id, number, payer_id, payee_id, amount, fee, currency)
    SELECT t.transfer_id, 'R-' || lpad(nextval('receipt_numbers')::text, 8, '0'),
           t.fan_id, t.creator_id, t.amount, t.fee, t.currency
    FROM tips t WHERE t.transfer_id = :transfer_id
    ON CONFLICT (transfer_id) DO NOTHING
    RETURNING number
    """
)


async def issue_receipt(session: AsyncSession, transfer_id: int) -> str | None:
    """Record the receipt of tip `transfer_id`; return its number, or None if it existed.

    Idempotent: the unique transfer_id makes a second run a no-op (a receipt number drawn by a
    losing run is skipped, never reused).
    """
    number = await session.scalar(_ISSUE, {"transfer_id": transfer_id})
    return str(number) if number is not None else None
