"""Receipts for tips: at most one per transfer, however often the job runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_ISSUE = text(
    """
    INSERT INTO receipts (transfer_id, number, payer_id, payee_id, amount, fee, currency)
    SELECT t.transfer_id, 'R-' || lpad(nextval('receipt_numbers')::text, 8, '0'),
           t.fan_id, t.creator_id, t.amount, t.fee, t.currency
    FROM (
        SELECT * FROM tips WHERE transfer_id = ANY(CAST(:transfer_ids AS bigint[]))
        ORDER BY transfer_id
    ) t
    ON CONFLICT (transfer_id) DO NOTHING
    RETURNING transfer_id, number
    """
)


async def issue_receipts(session: AsyncSession, transfer_ids: Sequence[int]) -> dict[int, str]:
    """Record the receipts of tips `transfer_ids` in one statement; return the numbers of those
    issued now (a tip that already had one is left out).

    Idempotent: the unique transfer_id makes a second run a no-op (a receipt number drawn by a
    losing run is skipped, never reused).
    """
    rows = await session.execute(_ISSUE, {"transfer_ids": list(transfer_ids)})
    return {int(transfer_id): str(number) for transfer_id, number in rows.all()}


async def issue_receipt(session: AsyncSession, transfer_id: int) -> str | None:
    """Record the receipt of tip `transfer_id`; return its number, or None if it existed."""
    return (await issue_receipts(session, [transfer_id])).get(transfer_id)


@dataclass(frozen=True, slots=True)
class ReceiptToSend:
    id: int
    number: str
    email: str
    payee_id: str
    payee_name: str | None
    amount: int
    fee: int
    currency: str


async def claim_unsent(session: AsyncSession, transfer_id: int) -> ReceiptToSend | None:
    """The tip's receipt if it is still to be emailed and the payer has an address, locked
    for this transaction (a second worker skips it instead of sending it again)."""
    row = (
        await session.execute(
            text(
                """
                SELECT r.id, r.number, r.payee_id, r.amount, r.fee, r.currency,
                       payer.email, payee.display_name
                FROM receipts r
                JOIN users payer ON payer.id = r.payer_id
                JOIN users payee ON payee.id = r.payee_id
                WHERE r.transfer_id = :transfer_id AND r.emailed_at IS NULL
                  AND payer.email IS NOT NULL
                FOR UPDATE OF r SKIP LOCKED
                """
            ),
            {"transfer_id": transfer_id},
        )
    ).one_or_none()
    if row is None:
        return None
    return ReceiptToSend(
        id=row.id,
        number=row.number,
        email=row.email,
        payee_id=row.payee_id,
        payee_name=row.display_name,
        amount=row.amount,
        fee=row.fee,
        currency=row.currency,
    )


async def mark_emailed(session: AsyncSession, receipt_id: int) -> None:
    await session.execute(
        text("UPDATE receipts SET emailed_at = now() WHERE id = :id"), {"id": receipt_id}
    )
