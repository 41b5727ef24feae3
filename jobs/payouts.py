"""payouts.execute: ask the payout's provider to send it; the outcome arrives by webhook."""

from __future__ import annotations

import logging
from typing import Any

from arq import Retry
from arq.connections import ArqRedis

from ledger.db import unit_of_work
from ledger.ids import platform_id
from ledger.payouts import get_payout, mark_processing
from ledger.provider_events import Provider, ProviderError, TransferRequest

log = logging.getLogger(__name__)

NAME = "payouts.execute"


async def execute(ctx: dict[str, Any], payout_id: int) -> str | None:
    """Idempotent: only a pending payout is sent, and the provider dedupes on our reference,
    so a retry after a lost answer does not pay twice."""
    async with unit_of_work(ctx["sessions"]) as uow:
        payout = await get_payout(uow.session, payout_id=payout_id)
    if payout.status != "pending":
        return payout.provider_ref
    provider: Provider | None = await ctx["providers"].get(payout.provider)
    if provider is None:
        log.error("payout %s: provider %s is not configured here", payout.id, payout.provider)
        raise Retry(defer=60)
    try:
        provider_ref = await provider.transfer(
            TransferRequest(
                reference=payout.reference,
                amount=payout.amount.amount,
                currency=payout.amount.currency,
                # the creator as their platform names them
                recipient=platform_id(payout.creator_id),
            )
        )
    except ProviderError as exc:
        log.warning("payout %s: provider refused (%s); will retry", payout.id, exc)
        raise Retry(defer=ctx.get("job_try", 1) * 10) from exc
    async with unit_of_work(ctx["sessions"]) as uow:
        await mark_processing(uow.session, payout.id, provider_ref)
    return provider_ref


async def enqueue(pool: ArqRedis, payout_id: int) -> None:
    await pool.enqueue_job(NAME, payout_id, _job_id=f"{NAME}:{payout_id}")
