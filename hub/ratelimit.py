"""Rate limits on money routes, one budget shared by every hub node through Redis."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from functools import lru_cache

from limits import RateLimitItem, parse_many
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

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


# One round trip for every limit of every key of a request, decided atomically on Redis's clock.
# KEYS: one list per (key, limit), newest timestamp first. ARGV: per key, its limit and period.
# Every window is read first; only if none is full does each get the new timestamp, so a request
# refused by one limit spends nothing from the others, and no concurrent request can slip past a
# full window between the read and the write. Returns {now, hit (1/0), then per key: the entries
# in its window before this request, and the oldest of them (or now)}.
_MOVING_WINDOWS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local answer = {tostring(now), 1}
for i = 1, #KEYS do
    local limit = tonumber(ARGV[2 * i - 1])
    local cutoff = now - tonumber(ARGV[2 * i])
    local low, high, count = 0, limit - 1, 0
    while low <= high do
        local mid = math.floor((low + high) / 2)
        local value = tonumber(redis.call('LINDEX', KEYS[i], mid))
        if value and value > cutoff then
            count = mid + 1
            low = mid + 1
        else
            high = mid - 1
        end
    end
    local oldest = now
    if count > 0 then
        oldest = tonumber(redis.call('LINDEX', KEYS[i], count - 1))
    end
    if count >= limit then
        answer[2] = 0
    end
    answer[#answer + 1] = count
    answer[#answer + 1] = tostring(oldest)
end
if answer[2] == 1 then
    local stamp = string.format('%.6f', now)
    for i = 1, #KEYS do
        redis.call('LPUSH', KEYS[i], stamp)
        redis.call('LTRIM', KEYS[i], 0, tonumber(ARGV[2 * i - 1]) - 1)
        redis.call('EXPIRE', KEYS[i], math.ceil(tonumber(ARGV[2 * i])))
    end
end
return answer
"""


class RateLimiter:
    """Moving-window limits kept in Redis under `prefix`, so all nodes share one budget: a
    request gets at most N hits in ANY window of the period (a fixed window lets 2N through
    around a boundary; a sliding-window counter is an estimate). Each (key, limit) is a Redis
    list of up to N timestamps, taken from Redis's clock; one script checks and spends every
    limit of every key of a request in one round trip.

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
        self._prefix = prefix
        # Short socket timeouts bound what an unreachable Redis adds to a request; no retries.
        self._redis = Redis.from_url(
            redis_url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._redis.register_script(_MOVING_WINDOWS)
        self._warn_every = warn_every
        self._warned_at: float | None = None

    async def hit(self, scope: str, key: str | Sequence[str], limits_text: str) -> dict[str, str]:
        """Spend one unit of every limit in `limits_text` for (`scope`, each key) — a request
        limited per user and per IP passes both keys at once.

        Returns the RateLimit-* headers of the tightest limit over all keys, or raises
        RateLimited without spending from any key or limit.
        """
        items = parse_limits(limits_text)
        keys = [key] if isinstance(key, str) else list(key)
        pairs = [(item, one) for one in keys for item in items]
        try:
            answer = await self._script(
                keys=[f"{self._prefix}:{item.key_for(scope, one)}" for item, one in pairs],
                args=[value for item, _ in pairs for value in (item.amount, item.get_expiry())],
            )
        except (RedisError, OSError) as error:
            self._warn(error)
            if not self._fail_open:
                raise LimiterUnavailable("rate limits cannot be checked now") from error
            return {}
        now, allowed = float(answer[0]), answer[1] == 1
        windows = [
            (item, int(answer[2 + 2 * i]), float(answer[3 + 2 * i]) + item.get_expiry() - now)
            for i, (item, _) in enumerate(pairs)
        ]
        if not allowed:
            # The caller can only succeed once every used-up limit has freed a unit.
            spent = [window for window in windows if window[1] >= window[0].amount]
            item, _, reset_in = max(spent, key=lambda window: window[2])
            raise _limited(item, reset_in)
        item, count, reset_in = min(windows, key=lambda w: (w[0].amount - w[1], -w[2]))
        return {
            "RateLimit-Limit": str(item.amount),
            "RateLimit-Remaining": str(max(0, item.amount - count - 1)),
            "RateLimit-Reset": str(_whole_seconds(reset_in)),
        }

    async def close(self) -> None:
        await self._redis.aclose()

    def _warn(self, error: Exception) -> None:
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= self._warn_every:
            self._warned_at = now
            log.warning("rate limits not enforced, Redis unreachable: %s", error)


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def _limited(item: RateLimitItem, reset_in: float) -> RateLimited:
    retry_after = _whole_seconds(reset_in)
    headers = {
        "Retry-After": str(retry_after),
        "RateLimit-Limit": str(item.amount),
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(retry_after),
    }
    return RateLimited(str(item), retry_after, headers)
