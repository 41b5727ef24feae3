"""Holds: money reserved on an account (pending), later posted or voided, or expired.

A pending hold lowers the account's available balance (balance - held) without moving money;
no debit may take the account below its holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import InsufficientFunds, LedgerError
from ledger.schema import accounts, holds
from ledger.transfers import Leg, PostedTransfer, post_transfer


class HoldNotPending(LedgerError):
    pass


@dataclass(frozen=True, slots=True)
class Hold:
    id: int
    account_id: int
    amount: int
    currency: str
    status: str
    reference: str
    expires_at: datetime


async def place_hold(
    session: AsyncSession,
    account_id: int,
    amount: int,
    currency: str,
    reference: str,
    ttl: timedelta,
) -> Hold:
    """Reserve `amount` on the account; InsufficientFunds if its available balance is short."""
    reserved = await session.scalar(
        text(
            "UPDATE accounts SET held = held + :amount, version = version + 1 "
            "WHERE id = :id AND currency = :currency AND balance - held >= :amount "
            "RETURNING id"
        ),
        {"id": account_id, "amount": amount, "currency": currency},
    )
    if reserved is None:
        raise InsufficientFunds("not enough available balance for this hold", param="amount")
    row = (
        await session.execute(
            holds.insert()
            .values(
                account_id=account_id,
                amount=amount,
                currency=currency,
                status="pending",
                reference=reference,
                expires_at=func.now() + ttl,
            )
            .returning(*holds.c)
        )
    ).one()
    return _hold(row)


async def _release(session: AsyncSession, hold_id: int, status: str) -> Hold:
    row = (
        await session.execute(
            update(holds)
            .where(holds.c.id == hold_id, holds.c.status == "pending")
            .values(status=status, resolved_at=func.now())
            .returning(*holds.c)
        )
    ).one_or_none()
    if row is None:
        raise HoldNotPending(f"hold {hold_id} is not pending")
    await session.execute(
        update(accounts)
        .where(accounts.c.id == row.account_id)
        .values(held=accounts.c.held - row.amount, version=accounts.c.version + 1)
    )
    return _hold(row)


async def void_hold(session: AsyncSession, hold_id: int) -> Hold:
    """Give the reserved money back to the available balance."""
    return await _release(session, hold_id, "voided")


async def post_hold(
    session: AsyncSession, hold_id: int, to_account: int, *, kind: str, reference: str
) -> PostedTransfer:
    """Move the held money to `to_account`: release the hold and post the transfer at once."""
    hold = await _release(session, hold_id, "posted")
    transfer = await post_transfer(
        session,
        kind=kind,
        currency=hold.currency,
        legs=[Leg(hold.account_id, -hold.amount), Leg(to_account, hold.amount)],
        reference=reference,
    )
    await session.execute(
        update(holds).where(holds.c.id == hold_id).values(transfer_id=transfer.id)
    )
    return transfer


async def expired_holds(session: AsyncSession, limit: int = 100) -> list[Hold]:
    """Pending holds past their expiry, locked for the caller to void (skipping locked ones)."""
    rows = await session.execute(
        select(holds)
        .where(holds.c.status == "pending", holds.c.expires_at < func.now())
        .order_by(holds.c.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_hold(row) for row in rows]


def _hold(row: object) -> Hold:
    m = row._mapping  # type: ignore[attr-defined]
    return Hold(
        id=m["id"],
        account_id=m["account_id"],
        amount=m["amount"],
        currency=m["currency"],
        status=m["status"],
        reference=m["reference"],
        expires_at=m["expires_at"],
    )
