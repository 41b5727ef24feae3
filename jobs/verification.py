"""payments.verify: check a succeeded payment against the provider's own API.

The webhook is signed, so this is a second opinion, not the gate: a payment the provider does
not confirm is recorded (`payments.verification`), logged as an error and left for an operator
(money already credited is not taken back by a job). Providers without a verify API are noted
as such.
"""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry
from arq.connections import ArqRedis
from sqlalchemy import func, select, update

from ledger.db import unit_of_work
from ledger.payments import NOT_CONFIRMED, get_payment
from ledger.provider_events import ProviderError
from ledger.schema import payments

log = logging.getLogger(__name__)

NAME = "payments.verify"


async def verify(ctx: dict[str, Any], payment_id: int) -> str:
    async with unit_of_work(ctx["sessions"]) as uow:
        payment = await get_payment(uow.session, payment_id)
    provider = await ctx["providers"].get(payment.provider)
    check = getattr(provider, "verify_transaction", None)
    if payment.status != "succeeded":
        return "not succeeded"
    async with ctx["sessions"]() as session:
        done = await session.scalar(
            select(payments.c.verification).where(
                payments.c.id == payment_id, payments.c.verified_at.is_not(None)
            )
        )
    if done is not None:
        return str(done)  # at least once: a second run changes nothing
    if check is None:
        outcome = "unverifiable: the provider has no verify API here"
    else:
        try:
            answer = await check(payment.reference)
        except ProviderError as exc:
            raise Retry(defer=ctx.get("job_try", 1) * 30) from exc
        confirmed = (
            answer.get("status") == "success"
            and int(answer.get("amount", -1)) == payment.amount.amount
            and str(answer.get("currency", "")).upper() == payment.amount.currency
        )
        outcome = "confirmed" if confirmed else f"{NOT_CONFIRMED}: {answer.get('status')}"
        if not confirmed:
            log.error(
                "payment %s not confirmed by %s: %s",
                payment.reference,
                payment.provider,
                answer.get("status"),
            )
    async with unit_of_work(ctx["sessions"]) as uow:
        await uow.session.execute(
            update(payments)
            .where(payments.c.id == payment_id)
            .values(verified_at=func.now(), verification=outcome)
        )
    return outcome


async def enqueue(pool: ArqRedis, payment_id: int) -> None:
    # Deferred: a provider's verify endpoint may lag its own webhook by a moment.
    await pool.enqueue_job(NAME, payment_id, _job_id=f"{NAME}:{payment_id}", _defer_by=5)
