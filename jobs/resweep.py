"""jobs.resweep (cron, every minute): enqueue again the follow-ups whose first enqueue was lost.

Follow-ups are enqueued after their transaction commits; if Redis was away at that moment (or
the node died in between) the enqueue is lost. The database says what is still to do, so this
job asks it every minute and enqueues again: arq's job ids make a duplicate enqueue a no-op.
(A tip's receipt and alert, a payment's verification and a payout's sending are not enqueued
by the hub at all: they are outbox rows its events' trigger wrote in their transaction,
jobs.outbox; this is the net under what is left.)
"""

from __future__ import annotations

from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import text

from jobs import payouts, refunds, verification

_STALE = "now() - interval '1 minute'"


async def resweep(ctx: dict[str, Any]) -> int:
    queries = {
        payouts.enqueue: f"""SELECT id FROM payouts WHERE status = 'pending'
            AND provider_ref IS NULL AND created_at < {_STALE} ORDER BY id LIMIT 500""",
        refunds.enqueue: f"""SELECT id FROM refunds WHERE status = 'pending'
            AND provider_ref IS NULL AND requested_by NOT LIKE 'provider:%'
            AND created_at < {_STALE} ORDER BY id LIMIT 500""",
        verification.enqueue: """SELECT id FROM payments WHERE status = 'succeeded'
            AND verified_at IS NULL AND updated_at < now() - interval '10 minutes'
            AND updated_at > now() - interval '7 days' ORDER BY id LIMIT 500""",
    }
    pool: ArqRedis = ctx["redis"]
    enqueued = 0
    async with ctx["sessions"]() as session:
        for enqueue, query in queries.items():
            for (row_id,) in (await session.execute(text(query))).all():
                await enqueue(pool, int(row_id))
                enqueued += 1
    return enqueued
