"""The platform fee in force, cached in process and in Redis, invalidated on every node at once.

Reads: this process's copy while fresh, else Redis, else PostgreSQL (then written to Redis).
A change commits in PostgreSQL first, then overwrites the Redis copy and publishes on a channel
that every node listens to, each dropping its own copy. The local copy also expires after `ttl`
seconds, so a node that missed a message (its subscription was down) converges anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from redis.asyncio import ConnectionPool, Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.fees import current_fee_bps

log = logging.getLogger(__name__)

KEY = "hub:platform_fee_bps"
CHANNEL = "hub:platform_fee_changed"


class FeeCache:
    def __init__(
        self,
        redis: Redis,
        sessions: async_sessionmaker[AsyncSession],
        default_bps: int,
        ttl: float = 30.0,
    ) -> None:
        self._redis = redis
        self._sessions = sessions
        self._default = default_bps
        self._ttl = ttl
        self._value: int | None = None
        self._expires = 0.0
        self._listener: asyncio.Task[None] | None = None
        kwargs = dict(redis.connection_pool.connection_kwargs)
        kwargs.pop("socket_timeout", None)
        self._listen_pool = ConnectionPool(
            connection_class=redis.connection_pool.connection_class, **kwargs
        )
        self.hits = 0
        self.misses = 0

    async def get(self) -> int:
        if self._value is not None and time.monotonic() < self._expires:
            self.hits += 1
            return self._value
        self.misses += 1
        value: int | None = None
        with contextlib.suppress(Exception):
            cached = await self._redis.get(KEY)
            value = int(cached) if cached is not None else None
        if value is None:
            async with self._sessions() as session:
                value = await current_fee_bps(session, self._default)
            with contextlib.suppress(Exception):
                # NX: a reader never overwrites a newer value an admin's change just wrote
                # (it may have read PostgreSQL before that change committed).
                await self._redis.set(KEY, value, ex=300, nx=True)
        self._value, self._expires = value, time.monotonic() + self._ttl
        return value

    async def changed(self, bps: int) -> None:
        """Call after the change committed: every node drops its copy."""
        self._value = None
        try:
            await self._redis.set(KEY, bps, ex=300)
            await self._redis.publish(CHANNEL, str(bps))
        except Exception:
            # The Redis copy may now be stale: remove it if we can; local copies expire anyway.
            log.exception("could not publish the platform fee change")
            with contextlib.suppress(Exception):
                await self._redis.delete(KEY)

    def invalidate(self) -> None:
        self._value = None

    async def listen(self) -> None:
        """Drop the local copy on every change message; resubscribe after a Redis failure."""
        while True:
            try:
                # Its own connection, without the shared client's read timeout: an idle
                # subscription must not time out.
                listener = Redis(connection_pool=self._listen_pool)
                async with listener.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self.invalidate()  # a change may have been missed while unsubscribed
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.invalidate()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("platform fee subscription lost; retrying", exc_info=True)
                await asyncio.sleep(1)

    def start(self) -> None:
        self._listener = asyncio.create_task(self.listen())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
