"""refunds.execute: ask the provider to return a refund we already posted to the ledger."""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry
from arq.connections import ArqRedis
from sqlalchemy import select

from ledger.db import unit_of_work
from ledger.payments import get_payment
from ledger.provider_events import Provider, ProviderError, RefundRequest
from ledger.refunds import update_refund
from ledger.schema import refunds

log = logging.getLogger(__name__)

NAME = "refunds.execute"


async def execute(ctx: dict[str, Any], refund_id: int) -> str | None:
    async with unit_of_work(ctx["sessions"]) as uow:
        row = (await uow.session.execute(select(refunds).where(refunds.c.id == refund_id))).one()
        payment = await get_payment(uow.session, row.payment_id)
    if row.provider_ref is not None or row.status != "pending":
        return str(row.provider_ref)
    provider: Provider | None = await ctx["providers"].get(payment.provider)
    if provider is None:
        log.error("refund %s: provider %s is not configured here", refund_id, payment.provider)
        raise Retry(defer=60)
    try:
        provider_ref = await provider.refund(
            RefundRequest(
                reference=row.reference,
                payment_reference=payment.reference,
                provider_payment_ref=payment.provider_ref,
                amount=row.amount,
                currency=row.currency,
            )
        )
    except ProviderError as exc:
        log.warning("refund %s: provider refused (%s); will retry", refund_id, exc)
        raise Retry(defer=ctx.get("job_try", 1) * 10) from exc
    async with unit_of_work(ctx["sessions"]) as uow:
        await update_refund(uow.session, refund_id, status="pending", provider_ref=provider_ref)
    return provider_ref


async def enqueue(pool: ArqRedis, refund_id: int) -> None:
    await pool.enqueue_job(NAME, refund_id, _job_id=f"{NAME}:{refund_id}")
