"""The outbox: the worker's follow-ups are rows the trigger on `events` writes in the money's
own transaction, and the worker (burst or running) drains them; the hub sends nothing to Redis
for them."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

from arq.connections import ArqRedis
from sqlalchemy import select

from jobs import payouts, receipts, refunds
from jobs.outbox import drain
from jobs.worker import build_worker
from ledger.db import unit_of_work
from ledger.events import record_events
from ledger.money import Money
from ledger.schema import outbox
from ledger.schema import receipts as receipts_table
from ledger.tips import send_tip
from tests.conftest import People, Services, auth, run_burst_worker
from tests.money import topup


async def _tip(http, people: People, amount: int = 1_000) -> int:
    response = await http.post(
        "/api/v1/tips",
        json={"creator_id": people.creator, "amount": amount, "currency": "NGN"},
        headers={**auth(people.fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def _outbox(sessions, transfer_id: int) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(select(outbox.c.topic).where(outbox.c.ref == transfer_id))
        return [str(topic) for (topic,) in rows]


async def _receipt(sessions, transfer_id: int) -> str | None:
    async with sessions() as session:
        number = await session.scalar(
            select(receipts_table.c.number).where(receipts_table.c.transfer_id == transfer_id)
        )
        return None if number is None else str(number)


async def _queued_only_by_the_drain(
    services: Services, sessions, topic: str, ref: int, job_name: str
) -> None:
    """One (`topic`, `ref`) outbox row was committed and no job enqueued; the drain enqueues
    `job_name` for it and takes the row (the job is taken back: no provider runs here)."""
    queued = select(outbox.c.id).where(outbox.c.topic == topic, outbox.c.ref == ref)
    async with sessions() as session:
        assert len((await session.execute(queued)).all()) == 1
    job = f"{job_name}:{ref}"
    queue = ArqRedis.from_url(services.redis_url)
    try:
        assert not await queue.exists(f"arq:job:{job}")
        await drain({"sessions": sessions, "redis": queue})
        assert await queue.exists(f"arq:job:{job}")
        async with sessions() as session:
            assert (await session.execute(queued)).all() == []
    finally:
        await queue.delete(f"arq:job:{job}")
        await queue.zrem("arq:queue", job)
        await queue.aclose()


async def test_a_tip_commits_its_followups_and_the_hub_enqueues_nothing(
    http, people: People, services: Services, sessions
) -> None:
    transfer_id = await _tip(http, people)
    assert await _outbox(sessions, transfer_id) == ["tip"]
    queue = ArqRedis.from_url(services.redis_url)
    try:
        # No receipt job was enqueued by the hub (it would carry this id).
        assert not await queue.exists(f"arq:job:{receipts.NAME}:{transfer_id}")
    finally:
        await queue.aclose()
    assert await _receipt(sessions, transfer_id) is None

    await run_burst_worker(services)
    assert await _outbox(sessions, transfer_id) == []
    number = await _receipt(sessions, transfer_id)
    assert number is not None and number.startswith("R-")
    await run_burst_worker(services)  # nothing left to do: the same receipt
    assert await _receipt(sessions, transfer_id) == number


async def test_the_outbox_row_is_written_and_rolled_back_with_the_tip(
    people: People, sessions
) -> None:
    transfer_id = None
    with contextlib.suppress(RuntimeError):
        async with unit_of_work(sessions) as uow:
            tip = await send_tip(
                uow.session,
                fan_id=people.fan,
                creator_id=people.creator,
                amount=Money(1_000, "NGN"),
                message=None,
                fee_bps=1000,
                reference=f"tip:{uuid.uuid4().hex}",
            )
            transfer_id = tip.transfer_id
            mine = await uow.session.execute(
                select(outbox.c.topic).where(outbox.c.ref == transfer_id)
            )
            assert [topic for (topic,) in mine] == ["tip"]  # in the tip's own transaction
            assert await _outbox(sessions, transfer_id) == []  # invisible before the commit
            raise RuntimeError("rolled back")
    assert transfer_id is not None
    assert await _outbox(sessions, transfer_id) == []


async def test_a_running_worker_drains_the_outbox_as_tips_commit(
    http, people: People, services: Services, sessions
) -> None:
    worker = build_worker(
        database_url=services.database_url, redis_url=services.redis_url, handle_signals=False
    )
    running = asyncio.create_task(worker.main())
    try:
        transfer_ids = [await _tip(http, people, 100 + n) for n in range(5)]
        for _ in range(200):
            if all([await _receipt(sessions, t) is not None for t in transfer_ids]):
                break
            await asyncio.sleep(0.05)
        numbers = [await _receipt(sessions, t) for t in transfer_ids]
        assert all(number is not None for number in numbers), numbers
        assert len(set(numbers)) == 5
        for transfer_id in transfer_ids:
            assert await _outbox(sessions, transfer_id) == []
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await worker.close()


async def test_a_payout_request_is_sent_only_through_the_outbox(
    http, people: People, services: Services, sessions
) -> None:
    """The hold and the ('payout.send', id) row commit together; the hub enqueues nothing, the
    drain queues payouts.execute (this test takes the job back: no provider runs here)."""
    await _tip(http, people, 5_000)
    response = await http.post(
        "/api/v1/payouts",
        json={"amount": 100, "currency": "NGN"},
        headers={**auth(people.creator, "creator"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    await _queued_only_by_the_drain(
        services, sessions, "payout.send", int(response.json()["id"]), payouts.NAME
    )


async def test_the_worker_followups_are_derived_from_the_events_written(
    people: People, sessions
) -> None:
    """Whoever writes an event, the trigger on `events` writes what the worker must do for it,
    in the same statement: nothing for an event that asks nothing of it (a balance, a refund
    the provider itself made, the platform's own), and nothing once the transaction rolls
    back."""
    base = 10_000_000_000 + uuid.uuid4().int % 1_000_000_000  # refs no real row has
    written = [
        (people.creator, "tip.received", {"tip_id": base + 1}),
        (people.fan, "tip.sent", {"tip_id": base + 1}),
        (people.fan, "balance.updated", {"account_id": base + 2, "version": 1}),
        (people.fan, "payment.succeeded", {"id": base + 3, "status": "succeeded"}),
        (people.creator, "payout.requested", {"id": base + 4, "status": "pending"}),
        (people.fan, "refund.processed", {"id": base + 5, "status": "pending"}),
        (people.fan, "refund.processed", {"id": base + 6, "status": "processed"}),
        (people.fan, "app.follow", {"id": base + 7}),
    ]
    mine = outbox.c.ref.between(base, base + 10)
    with contextlib.suppress(_RolledBack):
        async with unit_of_work(sessions) as uow:
            await record_events(uow.session, written)
            rows = await uow.session.execute(
                select(outbox.c.topic, outbox.c.ref).where(mine).order_by(outbox.c.id)
            )
            assert [(str(t), int(r) - base) for t, r in rows] == [
                ("tip", 1),
                ("payment.verify", 3),
                ("payout.send", 4),
                ("refund.send", 5),
            ]
            raise _RolledBack
    async with sessions() as session:
        assert (await session.execute(select(outbox.c.id).where(mine))).all() == []


class _RolledBack(Exception):
    pass


async def test_an_admin_refund_is_asked_of_the_provider_only_through_the_outbox(
    http, sandbox, uid, services: Services, sessions
) -> None:
    """The refund's ('refund.send', id) commits with it and the hub enqueues nothing; the drain
    queues refunds.execute (tests/hub/test_payouts_refunds.py follows it to the provider)."""
    fan, admin = uid("fan"), uid("admin")
    payment = await topup(http, sandbox, fan, 5_000)
    response = await http.post(
        "/api/v1/refunds",
        json={"payment_id": payment["id"], "amount": 1_000},
        headers={**auth(admin, "admin"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    await _queued_only_by_the_drain(
        services, sessions, "refund.send", int(response.json()["id"]), refunds.NAME
    )
