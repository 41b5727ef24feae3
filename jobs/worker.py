"""The arq worker: its job functions and the clients they share."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from arq import Worker
from arq.connections import ArqRedis, RedisSettings
from arq.cron import cron
from arq.worker import func

from jobs import (
    analytics,
    holds,
    maintenance,
    outbox,
    payouts,
    push,
    receipts,
    refunds,
    resweep,
    verification,
)
from jobs import webhooks as outbound
from jobs.deadletter import dead_lettered
from jobs.mail import SmtpConfig
from jobs.maintenance import Retention
from jobs.push import PushConfig
from jobs.webhooks import WebhookConfig
from ledger.db import make_engine, make_sessions
from providers.registry import Providers
from realtime.publisher import Publisher


def _job(coroutine: Any, name: str, max_tries: int) -> Any:
    wrapped: Any = dead_lettered(name, coroutine, max_tries)
    return func(wrapped, name=name, max_tries=max_tries)


FUNCTIONS = [
    _job(receipts.issue, receipts.NAME, 10),
    _job(payouts.execute, payouts.NAME, 20),
    _job(refunds.execute, refunds.NAME, 20),
    _job(verification.verify, verification.NAME, 10),
    _job(push.send_tip_alert, push.NAME, push.MAX_TRIES),
]
JOB_NAMES = frozenset(function.name for function in FUNCTIONS)


def cron_jobs(run_at_startup: bool = False) -> list[Any]:
    """Periodic jobs: `unique` makes one run per slot across all workers."""
    every: dict[str, Any] = {"unique": True, "run_at_startup": run_at_startup}
    return [
        cron(holds.expire, name=holds.NAME, second=0, **every),
        cron(resweep.resweep, name="jobs.resweep", second=45, **every),
        cron(
            analytics.rollup, name=analytics.NAME, minute=set(range(0, 60, 5)), second=15, **every
        ),
        cron(maintenance.expire_keys, name="idempotency.expire", minute=5, second=0, **every),
        cron(
            maintenance.prune_event_history,
            name="events.prune",
            minute=set(range(0, 60, 10)),
            second=30,
            **every,
        ),
        cron(
            maintenance.run_reconciliation,
            name="ledger.reconcile",
            minute=30,
            second=0,
            timeout=600,
            **every,
        ),
    ]


def build_worker(
    *,
    database_url: str,
    redis_url: str,
    providers: Providers | None = None,
    smtp: SmtpConfig | None = None,
    retention: Retention | None = None,
    push: PushConfig | None = None,
    webhooks: WebhookConfig | None = None,
    burst: bool = False,
    handle_signals: bool = True,
    run_cron_at_startup: bool = False,
) -> Worker:
    """`providers` are the payment provider adapters, built by the caller (the hub's CLI);
    `retention` what the housekeeping jobs keep (the defaults when None); `push` the Web Push
    key and rules (None: push is off)."""

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["engine"] = make_engine(database_url, pool_size=5, max_overflow=5)
        ctx["sessions"] = make_sessions(ctx["engine"])
        # the deployment's accounts, and the apps' own as the database has them
        ctx["providers"] = providers if providers is not None else Providers({}, None)
        ctx["providers"].read_apps_from(ctx["sessions"])
        ctx["smtp"] = smtp
        ctx["retention"] = retention or Retention()
        ctx["push"] = push
        # No redirects: a push service's answer must not send the worker elsewhere (SSRF).
        ctx["push_http"] = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=5.0), follow_redirects=False
        )
        ctx["redis"] = ArqRedis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
        ctx["publisher"] = Publisher(ctx["redis"], ctx["sessions"])
        ctx["webhooks"] = webhooks or WebhookConfig()
        ctx["webhook_http"] = outbound.new_client(ctx["webhooks"])
        # A running worker drains the outbox in the background from the start (arq runs jobs
        # meanwhile); a burst worker drains it first, so that it runs those follow-ups' jobs
        # too before it stops.
        if burst:
            await outbox.drain_once_for_burst(ctx)
            ctx["outbox"] = None
            await outbound.deliver_once_for_burst(ctx)
            ctx["webhook_sender"] = None
        else:
            ctx["outbox"] = asyncio.create_task(outbox.run(ctx), name="outbox")
            ctx["webhook_sender"] = asyncio.create_task(outbound.run(ctx), name="webhooks")

    async def shutdown(ctx: dict[str, Any]) -> None:
        await outbox.stop(ctx.get("outbox"))
        await outbound.stop(ctx.get("webhook_sender"))
        await ctx["webhook_http"].aclose()
        await ctx["redis"].aclose()
        await ctx["push_http"].aclose()
        await ctx["engine"].dispose()

    return Worker(
        functions=FUNCTIONS,
        cron_jobs=cron_jobs(run_cron_at_startup),
        redis_settings=RedisSettings.from_dsn(redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=handle_signals,
        poll_delay=0.2,
    )
