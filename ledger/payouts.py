"""Payouts: a creator's earnings held, sent by a provider, then posted or given back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import Kind, ensure_system_account
from ledger.errors import UnknownPayout
from ledger.events import Event, record_events
from ledger.holds import place_hold, post_hold, void_hold
from ledger.money import Money
from ledger.payments import new_reference
from ledger.provider_events import EventKind
from ledger.sales import creator_earnings
from ledger.schema import accounts, payouts
from ledger.transfers import Leg, post_transfer

# Long enough for any provider to report an outcome; an expired hold is given back.
PAYOUT_HOLD_TTL = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Payout:
    id: int
    reference: str
    creator_id: str
    amount: Money
    provider: str
    status: str
    hold_id: int
    provider_ref: str | None
    failure_reason: str | None
    created_at: datetime
    updated_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "amount": self.amount.as_json(),
            "provider": self.provider,
            "status": self.status,
            "failure_reason": self.failure_reason,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class PayoutChange:
    payout: Payout
    events: list[Event]


async def _balance_event(session: AsyncSession, account_id: int) -> dict[str, Any]:
    row = (await session.execute(select(accounts).where(accounts.c.id == account_id))).one()
    return {
        "account_id": row.id,
        "kind": row.kind,
        "currency": row.currency,
        "balance": row.balance,
        "available": row.balance - row.held,
        "version": row.version,
    }


async def request_payout(
    session: AsyncSession, *, creator_id: str, amount: Money, provider: str
) -> PayoutChange:
    """Hold `amount` of the creator's available earnings for a payout; never more than that."""
    earnings = await creator_earnings(session, creator_id, amount.currency)
    reference = new_reference("po")
    hold = await place_hold(
        session, earnings.id, amount.amount, amount.currency, reference, PAYOUT_HOLD_TTL
    )
    row = (
        await session.execute(
            payouts.insert()
            .values(
                reference=reference,
                creator_id=creator_id,
                amount=amount.amount,
                currency=amount.currency,
                provider=provider,
                hold_id=hold.id,
            )
            .returning(*payouts.c)
        )
    ).one()
    payout = _payout(row)
    events = await record_events(
        session,
        [
            (creator_id, "payout.requested", payout.as_json()),
            (creator_id, "balance.updated", await _balance_event(session, earnings.id)),
        ],
    )
    return PayoutChange(payout, events)


async def get_payout(
    session: AsyncSession, *, payout_id: int | None = None, reference: str | None = None
) -> Payout:
    query = select(payouts).with_for_update()
    if payout_id is not None:
        query = query.where(payouts.c.id == payout_id)
    else:
        query = query.where(payouts.c.reference == reference)
    row = (await session.execute(query)).one_or_none()
    if row is None:
        raise UnknownPayout("no such payout", param="payout_id")
    return _payout(row)


async def mark_processing(session: AsyncSession, payout_id: int, provider_ref: str) -> None:
    await session.execute(
        update(payouts)
        .where(payouts.c.id == payout_id, payouts.c.status == "pending")
        .values(status="processing", provider_ref=provider_ref, updated_at=func.now())
    )


async def settle_payout(
    session: AsyncSession, payout: Payout, outcome: EventKind, reason: str | None = None
) -> PayoutChange | None:
    """Apply the provider's outcome; None when it changes nothing (already settled that way).

    succeeded: the hold is posted, earnings → the provider's clearing account; failed: the hold
    is voided, the money is available again; reversed: as failed if still held, else a reversal
    transfer gives the paid money back to the earnings.
    """
    clearing = await ensure_system_account(
        session, Kind.PROVIDER_CLEARING, payout.amount.currency, payout.provider
    )
    status = payout.status
    values: dict[str, Any] = {"updated_at": func.now()}
    if outcome is EventKind.TRANSFER_SUCCEEDED and status in ("pending", "processing"):
        transfer = await post_hold(
            session, payout.hold_id, clearing, kind="payout", reference=f"payout:{payout.reference}"
        )
        values.update(status="paid", transfer_id=transfer.id)
        event = "payout.paid"
    elif outcome in (EventKind.TRANSFER_FAILED, EventKind.TRANSFER_REVERSED) and status in (
        "pending",
        "processing",
    ):
        await void_hold(session, payout.hold_id)
        values.update(status="failed", failure_reason=reason or outcome.value)
        event = "payout.failed"
    elif outcome is EventKind.TRANSFER_REVERSED and status == "paid":
        earnings = await creator_earnings(session, payout.creator_id, payout.amount.currency)
        paid = await session.scalar(select(payouts.c.transfer_id).where(payouts.c.id == payout.id))
        await post_transfer(
            session,
            kind="payout_reversal",
            currency=payout.amount.currency,
            legs=[Leg(clearing, -payout.amount.amount), Leg(earnings.id, payout.amount.amount)],
            reference=f"payout-reversal:{payout.reference}",
            reverses_id=paid,
        )
        values.update(status="reversed", failure_reason=reason or "reversed by the provider")
        event = "payout.failed"
    else:
        return None
    row = (
        await session.execute(
            update(payouts).where(payouts.c.id == payout.id).values(**values).returning(*payouts.c)
        )
    ).one()
    settled = _payout(row)
    earnings = await creator_earnings(session, payout.creator_id, payout.amount.currency)
    events = await record_events(
        session,
        [
            (payout.creator_id, event, settled.as_json()),
            (payout.creator_id, "balance.updated", await _balance_event(session, earnings.id)),
        ],
    )
    return PayoutChange(settled, events)


def _payout(row: object) -> Payout:
    m = row._mapping  # type: ignore[attr-defined]
    return Payout(
        id=m["id"],
        reference=m["reference"],
        creator_id=m["creator_id"],
        amount=Money(m["amount"], m["currency"]),
        provider=m["provider"],
        status=m["status"],
        hold_id=m["hold_id"],
        provider_ref=m["provider_ref"],
        failure_reason=m["failure_reason"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )
