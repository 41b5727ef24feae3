"""holds.expire (cron): give back pending holds past their expiry; a payout held that long
is failed, its money available again."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from sqlalchemy import select

from ledger.db import unit_of_work
from ledger.holds import expired_holds, void_hold
from ledger.payouts import get_payout, settle_payout
from ledger.provider_events import EventKind
from ledger.schema import payouts
from realtime.publisher import Publisher

log = logging.getLogger(__name__)

NAME = "holds.expire"


async def expire(ctx: dict[str, Any]) -> int:
    """Void up to 100 expired holds per run, each in its own transaction. Safe on two workers
    at once: a hold is locked (SKIP LOCKED) and must still be pending to change."""
    done = 0
    while done < 100:
        async with unit_of_work(ctx["sessions"]) as uow:
            expired = await expired_holds(uow.session, limit=1)
            if not expired:
                break
            hold = expired[0]
            payout_id = await uow.session.scalar(
                select(payouts.c.id).where(payouts.c.hold_id == hold.id)
            )
            if payout_id is None:
                await void_hold(uow.session, hold.id)
            else:
                payout = await get_payout(uow.session, payout_id=payout_id)
                change = await settle_payout(
                    uow.session, payout, EventKind.TRANSFER_FAILED, "expired without an outcome"
                )
                publisher: Publisher | None = ctx.get("publisher")
                if change is not None and publisher is not None:
                    uow.after_commit(partial(publisher.publish, change.events))
        done += 1
    if done:
        log.info("expired %d holds", done)
    return done
