"""Follow-ups whose enqueue was lost (Redis away at the commit) are enqueued again by the
resweep cron job, and a real worker then does them. A tip's receipt needs no enqueue: it is an
outbox row of the tip's own transaction (tests/jobs/test_outbox.py)."""

from __future__ import annotations

import uuid

from arq.connections import ArqRedis
from sqlalchemy import select, text

from jobs.resweep import resweep
from ledger.accounts import Role
from ledger.db import unit_of_work
from ledger.money import Money
from ledger.payouts import request_payout
from ledger.schema import payouts, receipts
from ledger.tips import send_tip
from tests.conftest import create_user, run_jobs


async def test_lost_enqueues_are_found_and_done(services, stack, sessions, uid) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(10_000, "NGN"))
    # Money moved, but nothing was enqueued (as if Redis had been away at the commit); the
    # tip's receipt comes from the outbox, whatever Redis did.
    async with unit_of_work(sessions) as uow:
        tip = await send_tip(
            uow.session,
            fan_id=fan,
            creator_id=creator,
            amount=Money(10_000, "NGN"),
            message=None,
            fee_bps=1000,
            reference=f"tip:{uuid.uuid4().hex}",
        )
        change = await request_payout(
            uow.session, creator_id=creator, amount=Money(9_000, "NGN"), provider="sandbox"
        )
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE payouts SET created_at = now() - interval '2 minutes' WHERE id = :id"),
            {"id": change.payout.id},
        )
    pool = ArqRedis.from_url(services.redis_url)
    try:
        assert await resweep({"sessions": sessions, "redis": pool}) >= 1
    finally:
        await pool.aclose()
    await run_jobs(services, stack)
    async with sessions() as session:
        receipt = await session.scalar(
            select(receipts.c.number).where(receipts.c.transfer_id == tip.transfer_id)
        )
        sent = await session.scalar(
            select(payouts.c.provider_ref).where(payouts.c.id == change.payout.id)
        )
    assert receipt is not None
    assert sent is not None  # the provider was asked to send the payout
