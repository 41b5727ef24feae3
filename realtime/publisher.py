"""Publishing committed events on the bus, from a hub node or a worker, and marking them."""

from __future__ import annotations

from collections.abc import Sequence

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.db import unit_of_work
from ledger.events import Event, mark_published
from realtime import bus


class Publisher:
    """Publishes event rows on the bus, then marks them published.

    Only ever called after the events' transaction committed. If Redis does not take them
    (PublishFailed) they stay unpublished: the sweeper republishes them, and any node that
    sees a later event of the same user fills the gap from the log meanwhile.
    """

    def __init__(self, redis: Redis, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._redis = redis
        self._sessions = sessions

    async def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        await bus.publish(self._redis, events)
        async with unit_of_work(self._sessions) as uow:
            await mark_published(uow.session, [event.id for event in events])
