"""The receipt follow-up: enqueued after the commit, run by a real arq worker in burst mode."""

from __future__ import annotations

import uuid

from arq.connections import ArqRedis
from sqlalchemy import func, select, text

from jobs import receipts
from jobs.holds import expire
from ledger.accounts import Role
from ledger.money import Money
from ledger.schema import receipts as receipts_table
from tests.conftest import People, auth, create_user, run_burst_worker
from tests.money import key, wallet


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


async def test_expired_payout_holds_are_given_back(http, sessions, services, uid) -> None:
    """A payout whose provider never answers: its hold expires, the payout fails, and the
    creator's earnings are available again (the cron job, run directly, twice)."""

    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(10_000, "NGN"))
    await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": 10_000, "currency": "NGN"},
        headers={**auth(fan, "fan"), **key()},
    )
    created = await http.post(
        "/api/v1/payouts",
        json={"amount": 9_000, "currency": "NGN"},
        headers={**auth(creator, "creator"), **key()},
    )
    assert created.status_code == 201
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE holds SET expires_at = now() - interval '1 second' WHERE reference = :r"),
            {"r": created.json()["reference"]},
        )
    ctx = {"sessions": sessions}
    assert await expire(ctx) >= 1
    await expire(ctx)
    earnings = (await wallet(http, creator, "creator"))[("earnings", "NGN")]
    assert (earnings["balance"], earnings["held"], earnings["available"]) == (9_000, 0, 9_000)
    shown = await http.get(
        f"/api/v1/payouts/{created.json()['id']}", headers=auth(creator, "creator")
    )
    assert shown.json()["status"] == "failed"
