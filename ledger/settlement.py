"""Applying a verified provider event: exactly once, in the transaction that records it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import Kind, ensure_system_account, find_account
from ledger.content import ensure_purchasable, get_content, purchase
from ledger.errors import LedgerError, UnknownPayout
from ledger.events import Event, record_events
from ledger.inbox import record_delivery, set_outcome
from ledger.money import Money
from ledger.payments import Payment, Purpose, find_by_reference, set_status
from ledger.payouts import Payout, get_payout, settle_payout
from ledger.provider_events import EventKind, ProviderEvent
from ledger.refunds import find_refund, refund_payment, update_refund
from ledger.tips import send_tip
from ledger.transfers import Leg, post_transfer

log = logging.getLogger(__name__)


@dataclass
class Settled:
    outcome: str  # applied | duplicate | ignored | mismatch | unknown
    detail: str | None = None
    events: list[Event] = field(default_factory=list)
    payout: Payout | None = None


async def apply_event(session: AsyncSession, event: ProviderEvent, payload: str) -> Settled:
    """Record `event` in the inbox and act on it, both in the caller's transaction.

    A duplicate (same provider and event id, now or days later) changes nothing. A payment
    success credits money only when our reference, the amount and the currency all match the
    pending payment; otherwise it is recorded as a mismatch and credits nothing.
    """
    delivery = await record_delivery(
        session,
        provider=event.provider,
        event_id=event.event_id,
        event_type=event.type,
        payload=payload,
    )
    if delivery is None:
        return Settled("duplicate")
    try:
        async with session.begin_nested():
            settled = await _dispatch(session, event)
    except LedgerError as exc:
        # The event was genuine but cannot be applied (say, a refund the wallet can no longer
        # cover): keep the record, move no money, let an operator look.
        settled = Settled("mismatch", f"{type(exc).__name__}: {exc.message}")
    if settled.outcome == "mismatch":
        log.warning(
            "webhook mismatch from %s, event %s: %s", event.provider, event.event_id, settled.detail
        )
    await set_outcome(session, delivery, settled.outcome, settled.detail)
    return settled


async def _dispatch(session: AsyncSession, event: ProviderEvent) -> Settled:
    kind = event.kind
    if kind is EventKind.PAYMENT_SUCCEEDED:
        return await _payment_succeeded(session, event)
    if kind is EventKind.PAYMENT_FAILED:
        return await _payment_failed(session, event)
    if kind is EventKind.REFUND_PROCESSED:
        return await _refund_processed(session, event)
    if kind in (
        EventKind.TRANSFER_SUCCEEDED,
        EventKind.TRANSFER_FAILED,
        EventKind.TRANSFER_REVERSED,
    ):
        return await _transfer_outcome(session, event)
    return Settled("unknown", f"event type {event.type!r} is not one Hub acts on")


async def _matching_payment(
    session: AsyncSession, event: ProviderEvent
) -> tuple[Payment | None, str | None]:
    if not event.reference:
        return None, "the event names no reference"
    payment = await find_by_reference(session, event.reference)
    if payment is None:
        return None, f"no payment with reference {event.reference!r}"
    if payment.provider != event.provider:
        return None, f"payment {payment.reference} belongs to {payment.provider}"
    if event.amount is not None and event.amount != payment.amount.amount:
        return None, f"amount {event.amount} does not match {payment.amount.amount}"
    if event.currency is not None and event.currency != payment.amount.currency:
        return None, f"currency {event.currency} does not match {payment.amount.currency}"
    return payment, None


async def _payment_succeeded(session: AsyncSession, event: ProviderEvent) -> Settled:
    payment, problem = await _matching_payment(session, event)
    if payment is None:
        return Settled("mismatch", problem)
    if event.amount is None or event.currency is None:
        return Settled("mismatch", "a success must state its amount and currency")
    if payment.status == "succeeded":
        return Settled("ignored", "the payment had already succeeded")
    # A success after a failure is the provider's final word (deliveries may come out of
    # order): the money was taken, so it is credited.
    amount, currency = payment.amount, payment.amount.currency
    clearing = await ensure_system_account(
        session, Kind.PROVIDER_CLEARING, currency, payment.provider
    )
    wallet = await find_account(session, payment.user_id, Kind.WALLET, currency)
    topup = await post_transfer(
        session,
        kind="topup",
        currency=currency,
        legs=[Leg(clearing, -amount.amount), Leg(wallet.id, amount.amount)],
        reference=f"payment:{payment.reference}",
        metadata={"payment_id": payment.id, "provider_ref": event.provider_ref},
    )
    # The provider's id of the charge itself (a Stripe PaymentIntent, not the Checkout Session
    # that started it) is what refunds must name.
    await set_status(
        session, payment.id, "succeeded", transfer_id=topup.id, provider_ref=event.provider_ref
    )
    events = await record_events(
        session,
        [
            (payment.user_id, "payment.succeeded", {**payment.as_json(), "status": "succeeded"}),
            (payment.user_id, "balance.updated", topup.entry(wallet.id).balance_event(currency)),
        ],
    )
    detail = None
    fee_bps = int(payment.details.get("fee_bps", 0))
    try:
        async with session.begin_nested():
            if payment.purpose is Purpose.TIP:
                tip = await send_tip(
                    session,
                    fan_id=payment.user_id,
                    creator_id=str(payment.details["creator_id"]),
                    amount=amount,
                    message=payment.details.get("message"),
                    fee_bps=fee_bps,
                    reference=f"tip:payment:{payment.reference}",
                    payment_id=payment.id,
                )
                events += tip.events
            elif payment.purpose is Purpose.PURCHASE:
                content_id = int(payment.details["content_id"])
                await ensure_purchasable(
                    session, payment.user_id, await get_content(session, content_id)
                )
                bought = await purchase(
                    session,
                    buyer_id=payment.user_id,
                    content_id=content_id,
                    fee_bps=fee_bps,
                    reference=f"purchase:payment:{payment.reference}",
                    payment_id=payment.id,
                )
                events += bought.events
    except LedgerError as exc:
        # The payment succeeded but what it was for cannot happen now (the content was bought
        # meanwhile, say): the money stays in the payer's wallet, never charged twice.
        detail = f"{payment.purpose.value} not completed ({exc.message}); credited to the wallet"
    return Settled("applied", detail, events)


async def _payment_failed(session: AsyncSession, event: ProviderEvent) -> Settled:
    payment, problem = await _matching_payment(session, event)
    if payment is None:
        return Settled("mismatch", problem)
    if payment.status != "pending":
        return Settled("ignored", f"the payment is already {payment.status}")
    reason = str(event.payload.get("reason") or event.type)
    await set_status(session, payment.id, "failed", failure_reason=reason)
    events = await record_events(
        session,
        [
            (
                payment.user_id,
                "payment.failed",
                {**payment.as_json(), "status": "failed", "failure_reason": reason},
            )
        ],
    )
    return Settled("applied", None, events)


async def _refund_processed(session: AsyncSession, event: ProviderEvent) -> Settled:
    ours = await find_refund(session, reference=event.reference) if event.reference else None
    if ours is None and event.provider_ref:
        ours = await find_refund(session, provider_ref=event.provider_ref)
    if ours is not None:
        if ours.status == "processed":
            return Settled("ignored", "the refund was already confirmed")
        await update_refund(session, ours.id, status="processed", provider_ref=event.provider_ref)
        return Settled("applied", "refund confirmed")
    # A refund started at the provider (its dashboard): post it here too.
    if not event.payment_reference or event.amount is None:
        return Settled("mismatch", "a refund must name the payment and the amount")
    payment = await find_by_reference(session, event.payment_reference)
    if payment is None or payment.provider != event.provider:
        return Settled("mismatch", f"no payment {event.payment_reference!r} at {event.provider}")
    if event.currency is not None and event.currency != payment.amount.currency:
        return Settled("mismatch", "the refund's currency does not match the payment's")
    result = await refund_payment(
        session,
        payment_id=payment.id,
        amount=event.amount,
        requested_by=f"provider:{event.provider}",
        provider_ref=event.provider_ref,
        status="processed",
    )
    return Settled("applied", None, result.events)


async def _transfer_outcome(session: AsyncSession, event: ProviderEvent) -> Settled:
    if not event.reference:
        return Settled("mismatch", "the transfer event names no reference")
    try:
        payout = await get_payout(session, reference=event.reference)
    except UnknownPayout:
        return Settled("mismatch", f"no payout with reference {event.reference!r}")
    if payout.provider != event.provider:
        return Settled("mismatch", f"payout {payout.reference} belongs to {payout.provider}")
    if event.amount is not None and event.amount != payout.amount.amount:
        return Settled("mismatch", f"amount {event.amount} does not match the payout's")
    change = await settle_payout(session, payout, event.kind, event.payload.get("reason"))
    if change is None:
        return Settled("ignored", f"the payout is already {payout.status}")
    return Settled("applied", None, change.events, change.payout)


__all__ = ["Money", "Settled", "apply_event"]
