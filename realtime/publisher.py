"""Publishing committed events on the bus, from a hub node or a worker, and marking them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.db import unit_of_work
from ledger.events import Event, mark_published
from realtime import bus

log = logging.getLogger(__name__)


class Publisher:
    """Publishes event rows on the bus, then marks them published.

    Only ever called after the events' transaction committed. If Redis does not take them
    (PublishFailed) they stay unpublished: the sweeper republishes them, and any node that
    sees a later event of the same user fills the gap from the log meanwhile.

    Started (a hub node), it marks what it published in batches, one UPDATE every
    `flush_interval` seconds for every publish in between, instead of a transaction per
    publish; not started (a worker, a script), it marks at once. Marking is bookkeeping for the
    sweeper only: an event marked late (or never, if the node dies first) is republished
    after the sweeper's age, and the nodes' per-connection cursors drop the copy.
    """

    def __init__(
        self,
        redis: Redis,
        sessions: async_sessionmaker[AsyncSession],
        *,
        flush_interval: float = 0.1,
    ) -> None:
        self._redis = redis
        self._sessions = sessions
        self._flush_interval = flush_interval
        self._pending: list[int] = []
        self._task: asyncio.Task[None] | None = None

    async def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        await bus.publish(self._redis, events)
        ids = [event.id for event in events]
        if self._task is None:
            await self._mark(ids)
        else:
            self._pending.extend(ids)

    async def flush(self) -> None:
        ids, self._pending = self._pending, []
        if ids:
            try:
                await self._mark(ids)
            except Exception as exc:  # the sweeper republishes them; cursors drop the copies
                log.warning("could not mark %d events published: %s", len(ids), exc)

    async def _mark(self, ids: list[int]) -> None:
        async with unit_of_work(self._sessions) as uow:
            await mark_published(uow.session, ids)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            await self.flush()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="publisher-marks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()
