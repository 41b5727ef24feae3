"""The dead-letter list: a job that failed for good is enqueued again with its arguments by
`hub jobs retry` or the admin route, once per entry, and runs in a real burst worker."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
from arq.connections import ArqRedis
from arq.jobs import Job
from sqlalchemy import func, select

from hub.embedded import free_port
from ledger.db import unit_of_work
from ledger.operations import record_failed_job
from ledger.schema import failed_jobs, receipts
from tests.conftest import JWT_SECRET, Services, auth, hub_server, make_settings, run_burst_worker
from tests.hub.test_cli import hub


def _env(services: Services) -> dict[str, str]:
    return {
        "HUB_DATABASE_URL": services.database_url,
        "HUB_REDIS_URL": services.redis_url,
        "HUB_JWT_SECRET": JWT_SECRET,
    }


async def _entries(sessions, **where: Any) -> list[dict[str, Any]]:
    query = select(failed_jobs).order_by(failed_jobs.c.id)
    for column, value in where.items():
        query = query.where(failed_jobs.c[column] == value)
    async with sessions() as session:
        return [dict(row._mapping) for row in await session.execute(query)]


async def _fail_for_good(services: Services, sessions, job: str, *args: Any) -> dict[str, Any]:
    """Enqueue `job`; a real burst worker fails it for good; its dead-letter entry."""
    job_id = f"{job}:{uuid.uuid4().hex}"
    queue = ArqRedis.from_url(services.redis_url)
    try:
        await queue.enqueue_job(job, *args, _job_id=job_id)
    finally:
        await queue.aclose()
    await run_burst_worker(services)
    [entry] = await _entries(sessions, job_id=job_id)
    return entry


def _missing_payout() -> int:
    return 10**12 + uuid.uuid4().int % 10**9  # no such payout: payouts.execute fails for good


async def test_hub_jobs_retry_enqueues_the_job_again_once(services, sessions) -> None:
    payout_id = _missing_payout()
    entry = await _fail_for_good(services, sessions, "payouts.execute", payout_id)
    assert entry["args"] == [payout_id] and entry["retried_at"] is None
    env = _env(services)

    first = await asyncio.to_thread(hub, "jobs", "retry", str(entry["id"]), env=env)
    assert first.returncode == 0, first.stderr
    [shown] = [json.loads(line) for line in first.stdout.splitlines()]
    retry_id = f"payouts.execute:retry:{entry['id']}"
    assert shown["id"] == entry["id"] and shown["retry_job_id"] == retry_id
    assert shown["retried_by"] == "hub jobs retry" and shown["retried_at"]
    queue = ArqRedis.from_url(services.redis_url)
    try:
        queued = await Job(retry_id, queue).info()
        assert queued is not None
        assert (queued.function, queued.args) == ("payouts.execute", (payout_id,))

        # It runs in a worker with the original arguments (and fails for good again: a new
        # entry, which can be retried in its turn).
        await run_burst_worker(services)
        [again] = await _entries(sessions, job_id=retry_id)
        assert (again["job"], again["args"]) == ("payouts.execute", [payout_id])
        assert "UnknownPayout" in again["error"] and again["retried_at"] is None

        # The same entry a second time: refused, and nothing is enqueued, even once arq has
        # forgotten the first retry's result (it keeps it an hour).
        await queue.delete(f"arq:result:{retry_id}")
        second = await asyncio.to_thread(hub, "jobs", "retry", str(entry["id"]), env=env)
        assert second.returncode == 1
        assert f"failed job {entry['id']} was already retried" in second.stderr
        assert second.stdout == ""
        assert await queue.zscore("arq:queue", retry_id) is None
        assert await Job(retry_id, queue).info() is None
    finally:
        await queue.aclose()

    listed = await asyncio.to_thread(hub, "jobs", "failed", "--limit", "1000", env=env)
    [mine] = [
        job for job in map(json.loads, listed.stdout.splitlines()) if job["id"] == entry["id"]
    ]
    assert mine["retry_job_id"] == retry_id

    unknown = await asyncio.to_thread(hub, "jobs", "retry", str(10**15), env=env)
    assert unknown.returncode == 1 and f"no failed job {10**15}" in unknown.stderr
    usage = await asyncio.to_thread(hub, "jobs", "retry", env=env)
    assert usage.returncode == 1 and "--all" in usage.stderr


def _only_unknown_jobs_refused(result: Any) -> None:
    """--all also meets the entries of other tests; the only ones it may refuse are jobs no
    longer run (as the last test here records), and then it exits 1."""
    refused = [line for line in result.stderr.splitlines() if "does not run" in line]
    assert result.returncode == (1 if refused else 0), result.stderr
    assert len(result.stderr.splitlines()) == len(refused) + 1, result.stderr
    assert result.stderr.splitlines()[-1].endswith("failed job(s) enqueued again")


async def test_hub_jobs_retry_all_retries_each_entry_not_retried_yet(services, sessions) -> None:
    entries = [
        await _fail_for_good(services, sessions, "payouts.execute", _missing_payout())
        for _ in range(2)
    ]
    result = await asyncio.to_thread(hub, "jobs", "retry", "--all", env=_env(services))
    _only_unknown_jobs_refused(result)
    retried = {job["id"]: job for job in map(json.loads, result.stdout.splitlines())}
    assert {entry["id"] for entry in entries} <= retried.keys()
    after = {row["id"]: row for row in await _entries(sessions)}
    assert all(after[failed_id]["retried_at"] is not None for failed_id in retried)
    await run_burst_worker(services)  # the retries fail again: new entries, not retried
    again = await asyncio.to_thread(hub, "jobs", "retry", "--all", env=_env(services))
    _only_unknown_jobs_refused(again)
    assert not {job["id"] for job in map(json.loads, again.stdout.splitlines())} & retried.keys()
    await run_burst_worker(services)


async def test_admins_retry_an_entry_once_even_when_asked_twice_at_once(
    http, services, sessions, uid
) -> None:
    payout_id = _missing_payout()
    entry = await _fail_for_good(services, sessions, "payouts.execute", payout_id)
    url = f"/api/v1/admin/jobs/failed/{entry['id']}/retry"
    admin = uid("admin")
    assert (await http.post(url, headers=auth(uid("fan"), "fan"))).status_code == 403
    for missing in (str(10**15), "abc", "0", str(2**70)):
        answer = await http.post(
            f"/api/v1/admin/jobs/failed/{missing}/retry", headers=auth(admin, "admin")
        )
        assert answer.status_code == 404, missing
        assert answer.json()["error"]["type"] == "failed_job_not_found"

    answers = await asyncio.gather(
        *(http.post(url, headers=auth(admin, "admin")) for _ in range(2))
    )
    assert sorted(answer.status_code for answer in answers) == [202, 409]
    [accepted] = [answer.json() for answer in answers if answer.status_code == 202]
    [refused] = [answer.json() for answer in answers if answer.status_code == 409]
    assert refused["error"]["type"] == "failed_job_already_retried"
    assert accepted["retried_by"] == admin
    assert accepted["retry_job_id"] == f"payouts.execute:retry:{entry['id']}"
    listed = await http.get("/api/v1/admin/jobs/failed", headers=auth(admin, "admin"))
    [shown] = [job for job in listed.json()["data"] if job["id"] == entry["id"]]
    assert shown["retried_at"] == accepted["retried_at"] and shown["retried_by"] == admin

    await run_burst_worker(services)
    retries = await _entries(sessions, job_id=accepted["retry_job_id"])
    assert [row["args"] for row in retries] == [[payout_id]]  # ran once

    document = (await http.get("/openapi.json")).json()
    retry = document["paths"]["/api/v1/admin/jobs/failed/{failed_id}/retry"]["post"]
    assert {"202", "404", "409", "503"} <= retry["responses"].keys()


async def test_a_retried_job_that_can_succeed_now_does(
    http, people, services, sessions, uid
) -> None:
    tipped = await http.post(
        "/api/v1/tips",
        json={"creator_id": people.creator, "amount": 300, "currency": "NGN"},
        headers={**auth(people.fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert tipped.status_code == 201
    transfer_id = tipped.json()["id"]
    # As the worker records a receipt job whose SMTP server refused it on every try.
    async with unit_of_work(sessions) as uow:
        await record_failed_job(
            uow.session,
            "receipts.issue",
            f"receipts.issue:{transfer_id}",
            [transfer_id],
            "SMTPConnectError('refused')",
            10,
        )
    [entry] = await _entries(sessions, job_id=f"receipts.issue:{transfer_id}")
    answer = await http.post(
        f"/api/v1/admin/jobs/failed/{entry['id']}/retry", headers=auth(uid("admin"), "admin")
    )
    assert answer.status_code == 202, answer.text
    await run_burst_worker(services)
    queue = ArqRedis.from_url(services.redis_url)
    try:
        result = await Job(answer.json()["retry_job_id"], queue).result_info()
    finally:
        await queue.aclose()
    assert result is not None and result.success, result
    assert (result.function, result.args) == ("receipts.issue", (transfer_id,))
    async with sessions() as session:
        issued = await session.scalar(
            select(func.count()).where(receipts.c.transfer_id == transfer_id)
        )
    assert issued == 1


async def test_an_entry_stays_unretried_when_the_queue_is_away_or_the_job_unknown(
    services, sessions, uid, http
) -> None:
    async with unit_of_work(sessions) as uow:
        for job in ("payouts.execute", "reports.removed_last_release"):
            await record_failed_job(uow.session, job, None, [_missing_payout()], "Boom()", 1)
    entries = await _entries(sessions, error="Boom()", retried_at=None)
    known, gone = entries[-2], entries[-1]
    admin = auth(uid("admin"), "admin")

    refused = await http.post(f"/api/v1/admin/jobs/failed/{gone['id']}/retry", headers=admin)
    assert refused.status_code == 409
    assert refused.json()["error"]["type"] == "failed_job_not_retriable"

    dead = free_port()
    server = hub_server(make_settings(services, redis_url=f"redis://127.0.0.1:{dead}/0"))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            away = await client.post(
                f"/api/v1/admin/jobs/failed/{known['id']}/retry", headers=admin
            )
    finally:
        await server.stop()
    assert away.status_code == 503 and away.json()["error"]["type"] == "service_unavailable"
    assert [row["retried_at"] for row in await _entries(sessions, id=known["id"])] == [None]
    cli = await asyncio.to_thread(
        hub,
        "jobs",
        "retry",
        str(known["id"]),
        env={**_env(services), "HUB_REDIS_URL": f"redis://127.0.0.1:{dead}/0"},
    )
    assert cli.returncode == 1 and "cannot retry: ConnectionError" in cli.stderr, cli.stderr
    assert "Traceback" not in cli.stderr and cli.stdout == ""
    assert [row["retried_at"] for row in await _entries(sessions, id=known["id"])] == [None]

    back = await http.post(f"/api/v1/admin/jobs/failed/{known['id']}/retry", headers=admin)
    assert back.status_code == 202
    await run_burst_worker(services)
