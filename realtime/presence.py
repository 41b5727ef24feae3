"""Cluster-wide presence in Redis: who is connected, and each creator's live overlays and
viewers; also the per-user connection limit.

Presence is kept per node, not per connection: each node writes a hash of counts
(`<prefix>:node:<node>:counts`, field → its number of connections counted under that field:
`user:<id>`, `overlays:<creator>`, `viewers:<creator>`) and a set of the users it holds
(`<prefix>:node:<node>:users`), and keeps itself alive with one heartbeat a second in the
`<prefix>:nodes` sorted set (scored by expiry). A connect or disconnect is one round trip; the
heartbeat costs the same with ten connections or ten thousand; connects that arrive together
are admitted in one pipeline (realtime.coalesce). A count sums the field over the
live nodes; a node that dies stops its heartbeat, drops out of every count after TTL seconds, and
its keys expire by themselves.

A node whose writes failed (Redis away) or whose keys are gone (Redis restarted) rewrites its
whole state from what it holds on the next heartbeat, so counts converge within a second or two
of Redis returning. The scripts read keys they are not given (one per live node): fine on one
Redis or a primary with replicas, not on Redis Cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import Counter
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from realtime.coalesce import Coalescer

log = logging.getLogger(__name__)

TTL = 5.0
REFRESH = 1.0
PREFIX = "hub:presence"

_SUM = """
local total = 0
local self_seen = false
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')) do
  if node == ARGV[4] then self_seen = true end
  total = total + tonumber(redis.call('HGET', ARGV[2] .. node .. ':counts', ARGV[3]) or 0)
end
if ARGV[4] ~= '' and not self_seen then
  total = total + tonumber(redis.call('HGET', ARGV[2] .. ARGV[4] .. ':counts', ARGV[3]) or 0)
end
"""

# ARGV: now, node prefix, field, this node ('' for none).
_COUNT = _SUM + "return total\n"

# ARGV: now, node prefix, field, this node, limit, ttl, user ('' for none), further fields.
# Counts the connection under the field unless it already has `limit` live ones cluster-wide
# (atomically), and then under the further fields, and the user as this node's: a connect's
# presence in one round trip.
_ADMIT = (
    _SUM
    + """
if total >= tonumber(ARGV[5]) then return 0 end
local key = ARGV[2] .. ARGV[4] .. ':counts'
redis.call('HINCRBY', key, ARGV[3], 1)
for i = 8, #ARGV do redis.call('HINCRBY', key, ARGV[i], 1) end
redis.call('EXPIRE', key, ARGV[6])
if ARGV[7] ~= '' then
  local users = ARGV[2] .. ARGV[4] .. ':users'
  redis.call('SADD', users, ARGV[7])
  redis.call('EXPIRE', users, ARGV[6])
end
return 1
"""
)

# ARGV: now, node prefix. The number of distinct users connected to live nodes.
_ONLINE = """
local keys = {}
for _, node in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')) do
  keys[#keys + 1] = ARGV[2] .. node .. ':users'
end
if #keys == 0 then return 0 end
if #keys == 1 then return redis.call('SCARD', keys[1]) end
return #redis.call('SUNION', unpack(keys))
"""


def nodes_key() -> str:
    return f"{PREFIX}:nodes"


def _node_prefix() -> str:
    return f"{PREFIX}:node:"


def counts_key(node: str) -> str:
    return f"{_node_prefix()}{node}:counts"


def users_key(node: str) -> str:
    return f"{_node_prefix()}{node}:users"


def user_key(user_id: str) -> str:
    return f"user:{user_id}"


def online_key() -> str:
    return "online"


def overlay_key(creator_id: str) -> str:
    return f"overlays:{creator_id}"


def viewer_key(creator_id: str) -> str:
    return f"viewers:{creator_id}"


def overlay_key_field(key_id: int) -> str:
    """The live sockets of one overlay key (capped like a user's)."""
    return f"overlay-key:{key_id}"


async def count_nodes(redis: Redis) -> int:
    return int(await redis.zcount(nodes_key(), f"({time.time()}", "+inf"))


async def count_online(redis: Redis) -> int:
    online = redis.register_script(_ONLINE)
    return int(await online(keys=[nodes_key()], args=[time.time(), _node_prefix()]))


class Presence:
    def __init__(self, redis: Redis, node_id: str | None = None) -> None:
        self._redis = redis
        self.node = node_id or uuid.uuid4().hex[:12]
        self._local: dict[str, tuple[tuple[str, ...], str | None]] = {}  # sid → (fields, user)
        self._counts: Counter[str] = Counter()  # field → this node's connections under it
        self._users: Counter[str] = Counter()  # user → this node's connections of theirs
        self._dirty = False  # a write failed: rewrite everything on the next heartbeat
        self._writes = 0  # writes started, to tell whether one raced a rewrite
        self._task: asyncio.Task[None] | None = None
        self._admit = redis.register_script(_ADMIT)
        self._admits = Coalescer(self._admit_together)
        self._count = redis.register_script(_COUNT)

    async def admit(
        self,
        field: str,
        sid: str,
        limit: int,
        user_id: str | None = None,
        fields: tuple[str, ...] = (),
    ) -> bool:
        """Count the connection under `field` (a user's, an overlay key's) unless it has `limit`
        already, and then under `fields` (a creator's viewers, overlays) and its user as
        online: one round trip. Fails open: with Redis away a connection is admitted (delivery
        does not need presence), and the heartbeat writes it once Redis answers."""
        self._writes += 1
        try:
            args: list[str | float] = [
                time.time(),
                _node_prefix(),
                field,
                self.node,
                limit,
                int(TTL) + 2,
                user_id or "",
                *fields,
            ]
            answer = await self._admits.submit(args)
            if isinstance(answer, Exception):
                raise answer
            admitted = bool(answer)
        except asyncio.CancelledError:
            # The connect was abandoned: its admission may have run in Redis all the same,
            # uncounted here, so the next heartbeat writes this node's counts afresh.
            self._dirty = True
            raise
        except Exception as exc:
            log.warning("presence unavailable, admitting %s: %s", sid, exc)
            self._dirty = True
            admitted = True
        if admitted:
            all_fields = (*fields, field)
            self._local[sid] = (all_fields, user_id)
            self._counts.update(all_fields)
            if user_id is not None:
                self._users[user_id] += 1
        return admitted

    async def _admit_together(self, batch: Sequence[list[str | float]]) -> list[int | Exception]:
        """Run the admit script once per request, in order, in one pipeline: each request's
        answer (1 admitted, 0 refused) or its own error. A Redis that lost the script (it
        restarted) refuses each run before it starts: those run again once it has the script.
        An error that reaches the whole pipeline (Redis away) is every request's."""
        answers: list[object] = [None] * len(batch)
        pending = list(range(len(batch)))
        for attempt in range(2):
            if attempt:
                await self._redis.script_load(_ADMIT)
            async with self._redis.pipeline(transaction=False) as pipe:
                for i in pending:
                    pipe.execute_command("EVALSHA", self._admit.sha, 1, nodes_key(), *batch[i])
                ran = await pipe.execute(raise_on_error=False)
            for i, answer in zip(pending, ran, strict=True):
                answers[i] = answer
            pending = [i for i in pending if isinstance(answers[i], NoScriptError)]
            if not pending:
                break
        return [
            answer if isinstance(answer, Exception) else int(answer)  # type: ignore[call-overload]
            for answer in answers
        ]

    async def leave(self, sid: str) -> None:
        entry = self._local.pop(sid, None)
        if entry is None:
            return
        fields, user_id = entry
        self._counts.subtract(fields)
        last = False
        if user_id is not None:
            self._users[user_id] -= 1
            last = self._users[user_id] <= 0
            if last:
                del self._users[user_id]
        self._writes += 1
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for field in fields:
                    if self._counts[field] <= 0:
                        del self._counts[field]
                        pipe.hdel(counts_key(self.node), field)
                    else:
                        pipe.hincrby(counts_key(self.node), field, -1)
                if last and user_id is not None:
                    pipe.srem(users_key(self.node), user_id)
                await pipe.execute()
        except Exception as exc:
            log.debug("presence unavailable for %s: %s", sid, exc)
            self._dirty = True

    async def count(self, field: str) -> int:
        try:
            if field == online_key():
                return await count_online(self._redis)
            args: list[str | float] = [time.time(), _node_prefix(), field, self.node]
            return int(await self._count(keys=[nodes_key()], args=args))
        except Exception as exc:
            log.warning("presence unavailable: %s", exc)
            return 0

    async def _heartbeat(self) -> None:
        now = time.time()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zadd(nodes_key(), {self.node: now + TTL})
            pipe.zremrangebyscore(nodes_key(), "-inf", now)
            pipe.expire(counts_key(self.node), int(TTL) + 2)
            pipe.expire(users_key(self.node), int(TTL) + 2)
            added, _, counts_alive, users_alive = await pipe.execute()
        lost = (self._counts and not counts_alive) or (self._users and not users_alive)
        if added or lost:
            self._dirty = True  # new to Redis (restarted, or we were away too long)
        if self._dirty:
            await self._rewrite()

    async def _rewrite(self) -> None:
        """Replace this node's keys with what it holds. A write that started meanwhile may have
        landed before or after, so then the next heartbeat rewrites again."""
        writes = self._writes
        counts = {field: n for field, n in self._counts.items() if n > 0}
        users = list(self._users)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(counts_key(self.node), users_key(self.node))
            if counts:
                pipe.hset(counts_key(self.node), mapping=counts)
                pipe.expire(counts_key(self.node), int(TTL) + 2)
            if users:
                pipe.sadd(users_key(self.node), *users)
                pipe.expire(users_key(self.node), int(TTL) + 2)
            await pipe.execute()
        self._dirty = self._writes != writes

    async def _refresh(self) -> None:
        while True:
            try:
                await self._heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._dirty = True
                log.debug("presence heartbeat failed: %s", exc)
            await asyncio.sleep(REFRESH)

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh(), name="presence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zrem(nodes_key(), self.node)
                pipe.delete(counts_key(self.node), users_key(self.node))
                await pipe.execute()
        self._local.clear()
        self._counts.clear()
        self._users.clear()
