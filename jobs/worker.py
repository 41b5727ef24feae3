"""The arq worker: its job functions and the clients they share."""

from __future__ import annotations

from typing import Any

from arq import Worker
from arq.connections import RedisSettings
from arq.worker import func

from jobs import receipts
from ledger.db import make_engine, make_sessions

FUNCTIONS = [func(receipts.issue, name=receipts.NAME, max_tries=10)]


def build_worker(
    *, database_url: str, redis_url: str, burst: bool = False, handle_signals: bool = True
) -> Worker:
    async def startup(ctx: dict[str, Any]) -> None:
        ctx["engine"] = make_engine(database_url, pool_size=5, max_overflow=5)
        ctx["sessions"] = make_sessions(ctx["engine"])

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["engine"].dispose()

    return Worker(
        functions=FUNCTIONS,
        redis_settings=RedisSettings.from_dsn(redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=handle_signals,
        poll_delay=0.2,
    )
