"""Housekeeping jobs through a real arq worker: reconciliation, retention, stale payments, and
the dead-letter record of a job that failed for good."""

from __future__ import annotations

import asyncio
import json
import uuid

from arq.connections import ArqRedis
from sqlalchemy import func, select, text

from hub.runtime import retention
from jobs import maintenance
from ledger.accounts import Role
from ledger.db import unit_of_work
from ledger.events import record_events
from ledger.operations import last_reconciliation, list_failed_jobs
from ledger.payments import count_unconfirmed
from ledger.schema import events, idempotency_keys
from providers.registry import Providers
from tests.conftest import auth, create_user, make_settings, run_burst_worker
from tests.hub.test_cli import hub
from tests.money import balance, deliver, start_topup


async def test_reconciliation_is_recorded(services, sessions) -> None:
    ctx = {"sessions": sessions, "providers": Providers({}, None)}
    report = await maintenance.run_reconciliation(ctx)
    assert report["ok"] is True, report["violations"]
    async with sessions() as session:
        last = await last_reconciliation(session)
    assert last is not None and last["ok"] is True and last["id"] == report["id"]


async def test_old_idempotency_keys_and_events_are_pruned_but_not_the_window(sessions, uid) -> None:
    user = uid("fan")
    event_ids = await _aged_history(sessions, user, event_hours=72, keys={"old": 72, "fresh": 0})
    async with sessions() as session, session.begin():
        # Pretend the user has had 1,003 events: the three old ones are beyond the last 1,000.
        await session.execute(
            text("UPDATE users SET event_seq = event_seq + 1000 WHERE id = :u"), {"u": user}
        )
    ctx = {"sessions": sessions}
    assert await maintenance.prune_event_history(ctx) >= 3
    assert await maintenance.expire_keys(ctx) >= 1
    async with sessions() as session:
        left = await session.scalar(select(func.count()).where(events.c.id.in_(event_ids)))
        keys = (
            (
                await session.execute(
                    select(idempotency_keys.c.key).where(idempotency_keys.c.caller_id == user)
                )
            )
            .scalars()
            .all()
        )
    assert left == 0
    assert keys == ["fresh"]


async def test_recent_events_are_kept_whatever_their_count(sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    async with unit_of_work(sessions) as uow:
        written = await record_events(uow.session, [(user, "test.new", {})] * 2)
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE events SET published_at = now() WHERE user_id = :u"), {"u": user}
        )
        await session.execute(
            text("UPDATE users SET event_seq = event_seq + 5000 WHERE id = :u"), {"u": user}
        )
    await maintenance.prune_event_history({"sessions": sessions})
    async with sessions() as session:
        assert (
            await session.scalar(
                select(func.count()).where(events.c.id.in_([e.id for e in written]))
            )
            == 2
        )


async def test_a_stale_pending_payment_is_failed_and_a_late_success_still_credits(
    http, sandbox, sessions, uid
) -> None:
    fan = uid("fan")
    payment = await start_topup(http, fan, 4_000, "sandbox")
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE payments SET created_at = now() - interval '2 days' WHERE id = :id"),
            {"id": payment["id"]},
        )
    report = await maintenance.run_reconciliation(
        {"sessions": sessions, "providers": Providers({}, None)}
    )
    assert report["stale_payments_settled"] >= 1
    shown = await http.get(
        f"/api/v1/payments/{payment['id']}",
        headers=auth(fan, "fan"),
    )
    assert shown.json()["status"] == "failed"
    await deliver(sandbox, f"checkout/{payment['reference']}", outcome="succeeded")
    assert await balance(http, fan) == 4_000


async def test_a_job_that_fails_for_good_is_in_the_dead_letter_list(services, sessions) -> None:
    queue = ArqRedis.from_url(services.redis_url)
    job_id = f"payouts.execute:{uuid.uuid4().hex}"
    try:
        await queue.enqueue_job("payouts.execute", 10**12, _job_id=job_id)  # no such payout
    finally:
        await queue.aclose()
    await run_burst_worker(services)
    async with sessions() as session:
        failed = await list_failed_jobs(session)
    mine = [f for f in failed if f["job_id"] == job_id]
    assert mine and mine[0]["job"] == "payouts.execute"
    assert "UnknownPayout" in mine[0]["error"]


async def test_operators_see_failed_jobs_and_the_status(http, services, sessions, uid) -> None:
    listed = await http.get("/api/v1/admin/jobs/failed", headers=auth(uid("admin"), "admin"))
    assert listed.status_code == 200 and isinstance(listed.json()["data"], list)
    assert (
        await http.get("/api/v1/admin/jobs/failed", headers=auth(uid("fan"), "fan"))
    ).status_code == 403
    env = {
        "HUB_DATABASE_URL": services.database_url,
        "HUB_REDIS_URL": services.redis_url,
        "HUB_JWT_SECRET": "x" * 40,
    }
    status = await asyncio.to_thread(hub, "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["nodes"] >= 1  # the live test server's heartbeat
    assert {
        "connected_users",
        "unpublished_events",
        "queue_depth",
        "failed_jobs",
        "last_reconciliation",
        "unconfirmed_payments",
    } <= shown.keys()
    async with sessions() as session:
        assert shown["unconfirmed_payments"] == await count_unconfirmed(session)
    screen = await asyncio.to_thread(hub, "status", env=env)
    assert "reconciliation" in screen.stdout
    assert f"unconfirmed       {shown['unconfirmed_payments']} payments" in screen.stdout
    failed = await asyncio.to_thread(hub, "jobs", "failed", env=env)
    assert failed.returncode == 0


async def _aged_history(
    sessions, user: str, event_hours: int = 3, keys: dict[str, int] | None = None
) -> list[int]:
    """Three published events of `event_hours` ago, and idempotency keys by name and age in
    hours (by default 36 and 25)."""
    await create_user(sessions, user, Role.FAN)
    async with unit_of_work(sessions) as uow:
        written = await record_events(uow.session, [(user, "test.aged", {})] * 3)
    async with sessions() as session, session.begin():
        await session.execute(
            text(
                "UPDATE events SET occurred_at = now() - make_interval(hours => :hours),"
                " published_at = now() WHERE user_id = :u"
            ),
            {"u": user, "hours": event_hours},
        )
        for key, hours in (keys or {"36h": 36, "25h": 25}).items():
            await session.execute(
                idempotency_keys.insert().values(
                    caller_id=user,
                    key=key,
                    request_hash="x",
                    created_at=func.now() - func.make_interval(0, 0, 0, 0, hours),
                )
            )
    return [event.id for event in written]


async def _kept(sessions, user: str, event_ids: list[int]) -> tuple[list[int], list[str]]:
    async with sessions() as session:
        kept_events = (
            (await session.execute(select(events.c.id).where(events.c.id.in_(event_ids))))
            .scalars()
            .all()
        )
        keys = (
            (
                await session.execute(
                    select(idempotency_keys.c.key).where(idempotency_keys.c.caller_id == user)
                )
            )
            .scalars()
            .all()
        )
    return sorted(kept_events), sorted(keys)


async def test_every_periodic_job_runs_in_a_real_worker_with_the_retention_settings(
    services, sessions, http, people, uid
) -> None:
    tipped = await http.post(
        "/api/v1/tips",
        json={"creator_id": people.creator, "amount": 700, "currency": "NGN"},
        headers={**auth(people.fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert tipped.status_code == 201
    user = uid("fan")
    event_ids = await _aged_history(sessions, user)
    # The default windows (48 h keys; 24 h and 1,000 events) keep all of it.
    await maintenance.prune_event_history({"sessions": sessions})
    await maintenance.expire_keys({"sessions": sessions})
    assert await _kept(sessions, user, event_ids) == (event_ids, ["25h", "36h"])

    async with sessions() as session:
        before = await last_reconciliation(session)
    settings = make_settings(
        services,
        idempotency_key_retention_hours=30,
        event_retention_hours=2,
        event_retention_count=1,
    )
    worker = await run_burst_worker(
        services, retention=retention(settings), run_cron_at_startup=True
    )
    async with sessions() as session:
        after = await last_reconciliation(session)
        rolled = await session.scalar(text("SELECT count(*) FROM revenue_daily"))
    assert after is not None and (before is None or after["id"] > before["id"])
    assert after["ok"] is True
    assert rolled >= 1
    assert worker.jobs_failed == 0
    assert worker.jobs_complete >= 5  # holds, rollup, keys, events, reconciliation
    # Older than 2 hours and beyond the user's last event: gone; the 36-hour key too.
    assert await _kept(sessions, user, event_ids) == (event_ids[-1:], ["25h"])
