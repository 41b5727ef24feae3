"""The sweeper: republishes events that stayed unpublished (a crash between commit and publish,
Redis down) within a few seconds. Every node runs one; SKIP LOCKED shares the rows out."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.db import unit_of_work
from ledger.events import claim_unpublished, mark_published
from ledger.schema import events
from realtime import bus

log = logging.getLogger(__name__)


class Sweeper:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis,
        *,
        interval: float = 1.0,
        older_than: float = 2.0,
    ) -> None:
        self._sessions = sessions
        self._redis = redis
        self._interval = interval
        self._older_than = older_than
        self._task: asyncio.Task[None] | None = None
        self.republished = 0

    async def sweep_once(self, limit: int = 500) -> int:
        """Republish one batch; the rows stay locked (and unpublished if Redis refuses)."""
        async with unit_of_work(self._sessions) as uow:
            stale = await claim_unpublished(uow.session, self._older_than, limit)
            if not stale:
                return 0
            await bus.publish(self._redis, stale)
            await mark_published(uow.session, [event.id for event in stale])
        self.republished += len(stale)
        log.info("republished %d events left unpublished", len(stale))
        return len(stale)

    async def backlog(self) -> int:
        async with self._sessions() as session:
            count = await session.scalar(
                select(func.count()).where(events.c.published_at.is_(None))
            )
        return int(count or 0)

    async def _run(self) -> None:
        while True:
            try:
                while await self.sweep_once() == 500:
                    pass
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("sweep failed (will retry): %s", exc)
            await asyncio.sleep(self._interval)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
