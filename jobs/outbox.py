"""The outbox: follow-ups written in the money's own transaction, drained by the worker.

The trigger on `events` (migration 0022) adds an outbox row for each event that asks the
worker for something, in the statement that writes the event: `('tip', tip_id)` for a
`tip.received`, `('payment.verify', id)` for a `payment.succeeded`, `('payout.send', id)` for
a `payout.requested`, `('refund.send', id)` for a pending `refund.processed`. So a committed
movement's follow-ups can be neither lost nor started for one that rolled back, whichever path
wrote it, and the hub sends nothing to Redis for them. The worker drains the outbox in
batches, each batch one transaction that takes its rows (`FOR UPDATE SKIP LOCKED`, so workers
share the work) and deletes them as it commits:

- `tip`: its receipt is recorded (one statement for the batch); when the worker sends email,
  `receipt.email`, and when Web Push is on, `push.tip`, are added for the next batch;
- `payment.verify`: the verification job is enqueued, to run 5 s later;
- `payout.send`: the job that asks the provider to send the payout is enqueued;
- `refund.send` (a refund asked by an admin, `refund.processed` still `pending`): the job that
  asks the provider to return it is enqueued;
- `receipt.email` and `push.tip`: their arq job is enqueued (the job id makes a repeat a no-op;
  the jobs are idempotent), before the rows' deletion commits, so a crash repeats an enqueue
  and never drops one. The email is queued only after the receipt's own commit.

A running worker drains every `POLL_SECONDS` in the background; a burst worker drains once as
it starts, before it runs the jobs (those of what was committed before it too). A Web Push alert
is queued only for a tip of the last hour (the push's own TTL): a backlog, or the tips migration
0011 put in the outbox, sends no stale alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from arq.connections import ArqRedis
from sqlalchemy import text

from jobs import payouts, push, receipts, refunds, verification
from ledger import outbox
from ledger.db import unit_of_work
from ledger.receipts import issue_receipts

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2
BATCH = 500

_TAKE = text(
    """
    DELETE FROM outbox
    WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED)
    RETURNING topic, ref
    """
)

_RECENT = text(
    "SELECT transfer_id FROM tips WHERE transfer_id = ANY(CAST(:ids AS bigint[])) "
    "AND created_at > now() - interval '1 hour' ORDER BY transfer_id"
)


async def drain(ctx: dict[str, Any], batch: int = BATCH) -> int:
    """Handle outbox rows, a batch per transaction, until none is left; return how many."""
    handled = 0
    while True:
        async with unit_of_work(ctx["sessions"]) as uow:
            taken = await uow.session.execute(_TAKE, {"limit": batch})
            rows = [(str(topic), int(ref)) for topic, ref in taken.all()]
            if not rows:
                return handled
            tips = sorted({ref for topic, ref in rows if topic == "tip"})
            if tips:
                await issue_receipts(uow.session, tips)
                if ctx.get("smtp") is not None:
                    await outbox.add(uow.session, "receipt.email", tips)
                if ctx.get("push") is not None:  # an alert is news for an hour (its push TTL)
                    recent = await uow.session.scalars(_RECENT, {"ids": tips})
                    await outbox.add(uow.session, "push.tip", [int(t) for t in recent])
            pool: ArqRedis = ctx["redis"]
            for topic, ref in rows:
                if topic == "receipt.email":
                    await receipts.enqueue(pool, ref)
                elif topic == "push.tip":
                    await push.enqueue_tip_alert(pool, ref)
                elif topic == "payment.verify":
                    await verification.enqueue(pool, ref)
                elif topic == "payout.send":
                    await payouts.enqueue(pool, ref)
                elif topic == "refund.send":
                    await refunds.enqueue(pool, ref)
        handled += len(rows)


async def drain_once_for_burst(ctx: dict[str, Any]) -> None:
    """A burst worker's drain as it starts; a failure is logged (the next worker drains)."""
    try:
        await drain(ctx)
    except Exception as exc:
        log.warning("could not drain the outbox: %s", exc)


async def run(ctx: dict[str, Any], every: float = POLL_SECONDS) -> None:
    """Drain forever (the worker's background task); a failure is logged, at most once a
    minute, and the next round tries again."""
    warned_at = 0.0
    while True:
        try:
            await drain(ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if time.monotonic() - warned_at > 60:
                warned_at = time.monotonic()
                log.warning("could not drain the outbox: %s", exc)
        await asyncio.sleep(every)


async def stop(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
