"""The receipt follow-up: enqueued after the commit, run by a real arq worker in burst mode."""

from __future__ import annotations

import uuid

from arq.connections import ArqRedis
from sqlalchemy import func, select

from jobs import receipts
from jobs.worker import build_worker
from ledger.schema import receipts as receipts_table
from tests.conftest import People, Services, auth


async def run_burst_worker(services: Services) -> None:
    worker = build_worker(
        database_url=services.database_url,
        redis_url=services.redis_url,
        burst=True,
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()


async def test_a_tip_gets_exactly_one_receipt(http, people: People, services, sessions) -> None:
    response = await http.post(
        "/api/v1/tips",
        json={"creator_id": people.creator, "amount": 5_000, "currency": "NGN"},
        headers={**auth(people.fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201
    transfer_id = response.json()["id"]

    await run_burst_worker(services)
    # At least once: the same job again, enqueued and run directly, changes nothing.
    queue = ArqRedis.from_url(services.redis_url)
    try:
        await receipts.enqueue(queue, transfer_id)
    finally:
        await queue.aclose()
    await run_burst_worker(services)
    assert await receipts.issue({"sessions": sessions}, transfer_id) is None

    async with sessions() as session:
        rows = (
            await session.execute(
                select(receipts_table).where(receipts_table.c.transfer_id == transfer_id)
            )
        ).all()
        assert len(rows) == 1
        [receipt] = rows
        assert (receipt.payer_id, receipt.payee_id) == (people.fan, people.creator)
        assert (receipt.amount, receipt.fee, receipt.currency) == (5_000, 500, "NGN")
        assert receipt.number.startswith("R-")
        assert (
            await session.scalar(
                select(func.count()).where(receipts_table.c.payer_id == people.fan)
            )
            == 1
        )
