"""Cluster-wide presence in Redis: who is connected, and each creator's live overlays and
viewers; also the per-user connection limit.

Each connection is a member `<node>:<sid>` of sorted sets scored by an expiry time. Nodes
refresh their members every second and remove them at once on disconnect, so a count is at
most a moment stale after a disconnect; a node that dies stops refreshing and its members
expire after TTL seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

log = logging.getLogger(__name__)

TTL = 5.0
REFRESH = 1.0
PREFIX = "hub:presence"

# Admit a connection if the user has fewer than `limit` live ones (atomically, cluster-wide).
_ADMIT = """
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[4])) + 1)
return 1
"""


@dataclass(frozen=True, slots=True)
class Member:
    sid: str
    sets: tuple[str, ...]  # the sorted sets this connection counts in


def nodes_key() -> str:
    return f"{PREFIX}:nodes"


def user_key(user_id: str) -> str:
    return f"{PREFIX}:user:{user_id}"


def online_key() -> str:
    return f"{PREFIX}:online"


def overlay_key(creator_id: str) -> str:
    return f"{PREFIX}:overlays:{creator_id}"


def viewer_key(creator_id: str) -> str:
    return f"{PREFIX}:viewers:{creator_id}"


class Presence:
    def __init__(self, redis: Redis, node_id: str | None = None) -> None:
        self._redis = redis
        self.node = node_id or uuid.uuid4().hex[:12]
        self._local: dict[str, tuple[Member, str | None]] = {}  # sid → (member, user_id)
        self._task: asyncio.Task[None] | None = None
        self._admit = redis.register_script(_ADMIT)

    def _member(self, sid: str) -> str:
        return f"{self.node}:{sid}"

    async def admit(self, user_id: str, sid: str, limit: int) -> bool:
        """Count the connection for the user unless they have `limit` already. Fails open:
        with Redis away a connection is admitted (delivery does not need presence)."""
        try:
            admitted = await self._admit(
                keys=[user_key(user_id)], args=[time.time(), self._member(sid), limit, TTL]
            )
        except Exception as exc:
            log.warning("presence unavailable, admitting %s: %s", sid, exc)
            return True
        return bool(admitted)

    async def join(self, sid: str, user_id: str | None, sets: tuple[str, ...]) -> None:
        """Track a connection in `sets` (the user's own set is kept by admit)."""
        all_sets = (*sets, *((user_key(user_id), online_key()) if user_id else ()))
        self._local[sid] = (Member(sid, all_sets), user_id)
        try:
            await self._touch([self._local[sid]])
        except Exception as exc:  # Redis away: the refresher adds it when Redis returns
            log.warning("presence unavailable for %s: %s", sid, exc)

    async def leave(self, sid: str) -> None:
        entry = self._local.pop(sid, None)
        if entry is None:
            return
        member, user_id = entry
        with contextlib.suppress(Exception):
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in member.sets:
                    if key != online_key():
                        pipe.zrem(key, self._member(sid))
                await pipe.execute()
            if user_id is not None and not await self.count(user_key(user_id)):
                await self._redis.zrem(online_key(), user_id)

    async def count(self, key: str) -> int:
        try:
            return int(await self._redis.zcount(key, time.time(), "+inf"))
        except Exception as exc:
            log.warning("presence unavailable: %s", exc)
            return 0

    async def _touch(self, entries: list[tuple[Member, str | None]]) -> None:
        expiry = time.time() + TTL
        async with self._redis.pipeline(transaction=False) as pipe:
            for member, user_id in entries:
                for key in member.sets:
                    online = key == online_key() and user_id is not None
                    name = user_id if online and user_id else self._member(member.sid)
                    pipe.zadd(key, {name: expiry})
                    pipe.expire(key, int(TTL) + 2)
            await pipe.execute()

    async def _refresh(self) -> None:
        while True:
            try:
                await self._redis.zadd(nodes_key(), {self.node: time.time() + TTL})
                await self._redis.zremrangebyscore(nodes_key(), "-inf", time.time())
                if self._local:
                    await self._touch(list(self._local.values()))
                    await self._redis.zremrangebyscore(online_key(), "-inf", time.time())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("presence refresh failed: %s", exc)
            await asyncio.sleep(REFRESH)

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh(), name="presence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sid in list(self._local):
            await self.leave(sid)
