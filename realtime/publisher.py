"""Publishing committed events to their users' rooms, from a hub node or a worker."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.db import unit_of_work
from ledger.events import Event, mark_published
from realtime.server import CHANNEL, RedisManager, user_room

log = logging.getLogger(__name__)


class Emitter(Protocol):
    async def emit(self, event: str, data: Any, *, namespace: str, room: str) -> Any: ...


def write_only_emitter(redis_url: str) -> Emitter:
    """An emitter for processes without a Socket.IO server (workers, scripts)."""
    manager: Emitter = RedisManager(redis_url, channel=CHANNEL, write_only=True)
    return manager


class Publisher:
    """Emits event rows to `user:<id>` rooms, then marks them published.

    Only ever called after the events' transaction committed. If Redis does not take an event
    (PublishFailed), that event and the ones after it stay unpublished for the sweeper.
    """

    def __init__(self, emitter: Emitter, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._emitter = emitter
        self._sessions = sessions

    async def publish(self, events: Sequence[Event]) -> None:
        if not events:
            return
        for event in events:
            await self._emitter.emit(
                event.type, event.envelope(), namespace="/", room=user_room(event.user_id)
            )
        async with unit_of_work(self._sessions) as uow:
            await mark_published(uow.session, [event.id for event in events])
