"""`hub status`: one screen for an operator, read from PostgreSQL and Redis directly."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from sqlalchemy import func, select

from ledger.db import make_engine, make_sessions
from ledger.operations import last_reconciliation, list_failed_jobs
from ledger.payments import count_unconfirmed
from ledger.schema import events, failed_jobs
from realtime.presence import count_nodes, count_online


async def gather_status(database_url: str, redis_url: str) -> dict[str, Any]:
    engine = make_engine(database_url, pool_size=1)
    redis = Redis.from_url(redis_url, socket_connect_timeout=2)
    status: dict[str, Any] = {}
    try:
        status["nodes"] = await count_nodes(redis)
        status["connected_users"] = await count_online(redis)
        status["queue_depth"] = int(await redis.zcard("arq:queue"))
        async with make_sessions(engine)() as session:
            status["unpublished_events"] = int(
                await session.scalar(select(func.count()).where(events.c.published_at.is_(None)))
                or 0
            )
            status["failed_jobs"] = int(
                await session.scalar(select(func.count()).select_from(failed_jobs)) or 0
            )
            status["recent_failed_jobs"] = await list_failed_jobs(session, limit=5)
            status["last_reconciliation"] = await last_reconciliation(session)
            status["unconfirmed_payments"] = await count_unconfirmed(session)
    finally:
        await redis.aclose()
        await engine.dispose()
    return status


def render(status: dict[str, Any]) -> str:
    last = status["last_reconciliation"]
    if last is None:
        reconciliation = "never run"
    else:
        outcome = "ok" if last["ok"] else f"FAILED ({len(last['report']['violations'])} checks)"
        reconciliation = f"{outcome} at {last['finished_at']}"
    lines = [
        f"nodes             {status['nodes']}",
        f"connected users   {status['connected_users']}",
        f"event backlog     {status['unpublished_events']} unpublished",
        f"queue depth       {status['queue_depth']} jobs waiting",
        f"failed jobs       {status['failed_jobs']}",
        f"reconciliation    {reconciliation}",
        f"unconfirmed       {status['unconfirmed_payments']} payments (provider did not confirm)",
    ]
    for job in status["recent_failed_jobs"]:
        retried = f" (retried as {job['retry_job_id']})" if job["retry_job_id"] else ""
        lines.append(f"  failed: {job['failed_at']} {job['job']} {job['error'][:80]}{retried}")
    return "\n".join(lines)
