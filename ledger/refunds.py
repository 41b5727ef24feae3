"""Refunds of provider payments: linked reversal transfers, never more than was paid."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import Kind, ensure_system_account, find_account
from ledger.errors import InvalidTransfer, RefundExceedsPayment, RefundNotAllowed
from ledger.events import Event, record_events
from ledger.payments import Payment, Purpose, get_payment, new_reference
from ledger.sales import creator_earnings
from ledger.schema import content, entitlements, payments, refunds, tips
from ledger.transfers import Leg, post_transfer


@dataclass(frozen=True, slots=True)
class Refund:
    id: int
    reference: str
    payment_id: int
    amount: int
    currency: str
    status: str
    provider_ref: str | None
    created_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "payment_id": self.payment_id,
            "amount": {"amount": self.amount, "currency": self.currency},
            "status": self.status,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class RefundResult:
    refund: Refund
    payment: Payment
    events: list[Event]


def fee_share(fee: int, amount: int, refunded_before: int, refunding: int) -> int:
    """The part of the original `fee` that a refund of `refunding` gives back.

    Cumulative floor: the shares of successive partial refunds add up to exactly `fee` once the
    whole `amount` is refunded, and never more, whatever the split.
    """
    return fee * (refunded_before + refunding) // amount - fee * refunded_before // amount


async def _sale_of(session: AsyncSession, payment: Payment) -> tuple[int, str, int] | None:
    """(transfer_id, creator_id, fee) of the tip or purchase the payment paid for, if any."""
    if payment.purpose is Purpose.TIP:
        query = select(tips.c.transfer_id, tips.c.creator_id, tips.c.fee).where(
            tips.c.payment_id == payment.id
        )
    elif payment.purpose is Purpose.PURCHASE:
        query = (
            select(entitlements.c.transfer_id, content.c.creator_id, entitlements.c.fee)
            .join(content, content.c.id == entitlements.c.content_id)
            .where(entitlements.c.payment_id == payment.id)
        )
    else:
        return None
    row = (await session.execute(query)).one_or_none()
    return (row[0], row[1], row[2]) if row is not None else None


async def refund_payment(
    session: AsyncSession,
    *,
    payment_id: int,
    amount: int | None,
    requested_by: str,
    provider_ref: str | None = None,
    status: str = "pending",
) -> RefundResult:
    """Refund `amount` (default: all that is left) of a succeeded payment.

    A top-up's refund takes the money back from the wallet (never below zero). A card tip's or
    purchase's refund takes it back from the creator's earnings — which may go negative, and
    only here — and the platform's fee share. The reversal links to the original transfer.
    """
    payment = await get_payment(session, payment_id, lock=True)
    if payment.status != "succeeded":
        raise RefundNotAllowed(f"payment {payment.id} is {payment.status}", param="payment_id")
    remaining = payment.amount.amount - payment.refunded_amount
    if remaining == 0:
        raise RefundNotAllowed("the payment is already fully refunded", param="payment_id")
    refunding = remaining if amount is None else amount
    if refunding <= 0:
        raise InvalidTransfer("amount must be a positive integer", param="amount")
    if refunding > remaining:
        raise RefundExceedsPayment(
            f"at most {remaining} is left to refund on this payment", param="amount"
        )
    currency = payment.amount.currency
    clearing = await ensure_system_account(
        session, Kind.PROVIDER_CLEARING, currency, payment.provider
    )
    sale = await _sale_of(session, payment)
    owners: list[tuple[str, int]]
    if sale is None:
        wallet = await find_account(session, payment.user_id, Kind.WALLET, currency)
        legs = [Leg(wallet.id, -refunding), Leg(clearing, refunding)]
        reverses, owners = None, [(payment.user_id, wallet.id)]
    else:
        reverses, creator_id, fee = sale
        earnings = await creator_earnings(session, creator_id, currency)
        fee_account = await ensure_system_account(session, Kind.PLATFORM_FEE, currency)
        give_back = fee_share(fee, payment.amount.amount, payment.refunded_amount, refunding)
        legs = [Leg(earnings.id, -(refunding - give_back)), Leg(clearing, refunding)]
        if give_back:
            legs.append(Leg(fee_account, -give_back))
        owners = [(creator_id, earnings.id)]
    reference = new_reference("rf")
    transfer = await post_transfer(
        session,
        kind="refund",
        currency=currency,
        legs=[leg for leg in legs if leg.amount],
        reference=f"refund:{reference}",
        reverses_id=reverses,
        negative_earnings=sale is not None,
        metadata={"payment_id": payment.id, "requested_by": requested_by},
    )
    refunded_after = payment.refunded_amount + refunding
    await session.execute(
        update(payments)
        .where(payments.c.id == payment.id)
        .values(refunded_amount=refunded_after, updated_at=func.now())
    )
    if payment.purpose is Purpose.PURCHASE and refunded_after == payment.amount.amount:
        await session.execute(delete(entitlements).where(entitlements.c.payment_id == payment.id))
    row = (
        await session.execute(
            refunds.insert()
            .values(
                reference=reference,
                payment_id=payment.id,
                amount=refunding,
                currency=currency,
                status=status,
                provider_ref=provider_ref,
                transfer_id=transfer.id,
                requested_by=requested_by,
            )
            .returning(*refunds.c)
        )
    ).one()
    refund = _refund(row)
    events = await record_events(
        session,
        [
            (payment.user_id, "refund.processed", refund.as_json()),
            *(
                (owner, "balance.updated", transfer.entry(account).balance_event(currency))
                for owner, account in owners
            ),
        ],
    )
    return RefundResult(refund, await get_payment(session, payment.id), events)


async def find_refund(
    session: AsyncSession, *, reference: str | None = None, provider_ref: str | None = None
) -> Refund | None:
    query = select(refunds).with_for_update()
    if reference is not None:
        query = query.where(refunds.c.reference == reference)
    elif provider_ref is not None:
        query = query.where(refunds.c.provider_ref == provider_ref)
    else:
        return None
    row = (await session.execute(query)).one_or_none()
    return _refund(row) if row is not None else None


async def update_refund(
    session: AsyncSession, refund_id: int, *, status: str, provider_ref: str | None = None
) -> None:
    values: dict[str, Any] = {"status": status, "updated_at": func.now()}
    if provider_ref is not None:
        values["provider_ref"] = provider_ref
    await session.execute(update(refunds).where(refunds.c.id == refund_id).values(**values))


def _refund(row: object) -> Refund:
    m = row._mapping  # type: ignore[attr-defined]
    return Refund(
        id=m["id"],
        reference=m["reference"],
        payment_id=m["payment_id"],
        amount=m["amount"],
        currency=m["currency"],
        status=m["status"],
        provider_ref=m["provider_ref"],
        created_at=m["created_at"],
    )
