"""Rate limits on money routes, one budget shared by every hub node through Redis."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from limits import RateLimitItem, WindowStats, parse_many
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.asyncio import ConnectionPool

log = logging.getLogger(__name__)


class RateLimited(Exception):
    """A limit is used up: answer 429 with `headers`; `retry_after` is whole seconds, ≥ 1."""

    def __init__(self, limit: str, retry_after: int, headers: dict[str, str]) -> None:
        super().__init__(f"rate limit of {limit} exceeded; retry in {retry_after} s")
        self.limit = limit
        self.retry_after = retry_after
        self.headers = headers
        self.message = str(self)


@lru_cache(maxsize=256)
def parse_limits(limits_text: str) -> tuple[RateLimitItem, ...]:
    """Parse "5/second;100/hour" once, shortest window first; ValueError names a bad string."""
    return tuple(sorted(parse_many(limits_text), key=lambda item: item.get_expiry()))


class LimiterUnavailable(Exception):
    """The limits cannot be checked (Redis away) and the limiter is set to fail closed."""


class RateLimiter:
    """Moving-window limits kept in Redis under `prefix`, so all nodes share one budget.

    Fails open by default: when Redis cannot be reached, `hit` allows the request (and returns
    no headers), logging a warning at most once every `warn_every` seconds — a payments API
    should not go down because its rate limiter's store is down. With `fail_open=False` it
    raises LimiterUnavailable instead (the route answers 503).
    """

    def __init__(
        self,
        redis_url: str,
        prefix: str = "hub:rl",
        *,
        timeout: float = 0.5,
        warn_every: float = 30.0,
        fail_open: bool = True,
    ) -> None:
        self._fail_open = fail_open
        # Short socket timeouts bound what an unreachable Redis adds to a request.
        self._pool = ConnectionPool.from_url(
            redis_url, socket_connect_timeout=timeout, socket_timeout=timeout
        )
        # limits types pass-through options as scalars; the pool goes to redis.asyncio.Redis.
        options: dict[str, Any] = {"connection_pool": self._pool}
        # redis-py rather than the default coredis: it is the client the rest of the hub uses,
        # and it honours the timeouts without retrying.
        storage = RedisStorage(
            _storage_uri(redis_url),
            implementation="redispy",
            key_prefix=prefix,
            wrap_exceptions=True,
            **options,
        )
        # Moving window: a money route gets at most N hits in ANY window of the period. A fixed
        # window lets 2N through around a boundary (N at 0:59, N at 1:00); the sliding-window
        # counter is an estimate. The price, a Redis list of up to N timestamps per key, is
        # small for limits of this size. Timestamps come from each node's clock.
        self._strategy = MovingWindowRateLimiter(storage)
        self._warn_every = warn_every
        self._warned_at: float | None = None

    async def hit(self, scope: str, key: str | Sequence[str], limits_text: str) -> dict[str, str]:
        """Spend one unit of every limit in `limits_text` for (`scope`, each key) — a request
        limited per user and per IP passes both keys at once.

        Returns the RateLimit-* headers of the tightest limit over all keys, or raises
        RateLimited without spending from any key or limit (all are read before any is hit).
        """
        items = parse_limits(limits_text)
        keys = [key] if isinstance(key, str) else list(key)
        try:
            return await self._hit(items, scope, keys)
        except (StorageError, OSError) as error:
            self._warn(error)
            if not self._fail_open:
                raise LimiterUnavailable("rate limits cannot be checked now") from error
            return {}

    async def close(self) -> None:
        await self._pool.aclose()

    async def _hit(
        self, items: tuple[RateLimitItem, ...], scope: str, keys: list[str]
    ) -> dict[str, str]:
        # Read first, so that a request refused by one limit spends nothing from the others.
        pairs = [(item, key) for key in keys for item in items]
        stats = await asyncio.gather(
            *(self._strategy.get_window_stats(item, scope, key) for item, key in pairs)
        )
        windows = [(item, window) for (item, _), window in zip(pairs, stats, strict=True)]
        spent = [(item, window) for item, window in windows if window.remaining < 1]
        if spent:
            # The caller can only succeed once every used-up limit has freed a unit.
            raise _limited(*max(spent, key=lambda pair: pair[1].reset_time))
        # Each hit is atomic for its own limit, so no limit ever lets more than N through. Only
        # a concurrent request racing past the read above can be refused here, after spending a
        # unit from shorter windows; that unit lasts no longer than the refusing limit's period.
        for item, key in pairs:
            if not await self._strategy.hit(item, scope, key):
                raise _limited(item, await self._strategy.get_window_stats(item, scope, key))
        item, window = min(windows, key=lambda pair: (pair[1].remaining, -pair[1].reset_time))
        return {
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(max(0, window.remaining - 1)),
            "RateLimit-Reset": str(_seconds_until(window.reset_time)),
        }

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= self._warn_every:
            self._warned_at = now
            log.warning("rate limits not enforced, Redis unreachable: %s", error)


def _storage_uri(redis_url: str) -> str:
    if redis_url.startswith("unix://"):
        return "async+redis+" + redis_url
    return "async+" + redis_url


def _seconds_until(reset_time: float) -> int:
    return max(1, math.ceil(reset_time - time.time()))


def _limited(item: RateLimitItem, window: WindowStats) -> RateLimited:
    retry_after = _seconds_until(window.reset_time)
    headers = {
        "Retry-After": str(retry_after),
        "RateLimit-Limit": str(item.amount),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(retry_after),
    }
    return RateLimited(str(item), retry_after, headers)
