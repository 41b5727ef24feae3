"""Rate limits against a real Redis: budgets, independence, two nodes, multi-limits, Redis down."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator

import pytest

from hub.embedded import free_port
from hub.ratelimit import RateLimited, RateLimiter, parse_limits
from tests.conftest import Services


@pytest.fixture
async def limiter(services: Services) -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter(services.redis_url)
    yield limiter
    await limiter.close()


def user() -> str:
    return f"user:{uuid.uuid4().hex}"


async def test_the_hit_after_the_budget_is_refused_with_headers(limiter: RateLimiter) -> None:
    key = user()
    first = await limiter.hit("payments", key, "3/minute")
    assert first["RateLimit-Limit"] == "3"
    assert first["RateLimit-Remaining"] == "2"
    assert 1 <= int(first["RateLimit-Reset"]) <= 60
    assert (await limiter.hit("payments", key, "3/minute"))["RateLimit-Remaining"] == "1"
    assert (await limiter.hit("payments", key, "3/minute"))["RateLimit-Remaining"] == "0"

    with pytest.raises(RateLimited) as refused:
        await limiter.hit("payments", key, "3/minute")
    error = refused.value
    assert error.limit == "3 per 1 minute"
    assert 1 <= error.retry_after <= 60
    assert error.headers == {
        "Retry-After": str(error.retry_after),
        "RateLimit-Limit": "3",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": str(error.retry_after),
    }


async def test_keys_and_scopes_are_independent(limiter: RateLimiter) -> None:
    ada, bob = user(), user()
    await limiter.hit("payments", ada, "1/minute")
    with pytest.raises(RateLimited):
        await limiter.hit("payments", ada, "1/minute")
    await limiter.hit("payments", bob, "1/minute")
    await limiter.hit("transfers", ada, "1/minute")
    await limiter.hit("payments", f"ip:{uuid.uuid4().hex}", "1/minute")


async def test_two_nodes_share_one_budget(services: Services, limiter: RateLimiter) -> None:
    other = RateLimiter(services.redis_url)
    key = user()
    try:
        await limiter.hit("payments", key, "3/minute")
        await other.hit("payments", key, "3/minute")
        await limiter.hit("payments", key, "3/minute")
        with pytest.raises(RateLimited):
            await other.hit("payments", key, "3/minute")
        with pytest.raises(RateLimited):
            await limiter.hit("payments", key, "3/minute")
    finally:
        await other.close()


async def test_concurrent_hits_from_two_nodes_never_exceed_the_limit(
    services: Services, limiter: RateLimiter
) -> None:
    other = RateLimiter(services.redis_url)
    key = user()

    async def attempt(node: RateLimiter) -> bool:
        try:
            await node.hit("payments", key, "5/minute")
        except RateLimited:
            return False
        return True

    try:
        outcomes = await asyncio.gather(*(attempt(n) for n in [limiter, other] * 15))
    finally:
        await other.close()
    assert outcomes.count(True) == 5


async def test_several_limits_in_one_string(limiter: RateLimiter) -> None:
    key = user()
    first = await limiter.hit("payments", key, "2/second;3/minute")
    # The tightest limit speaks: 1 left of 2 per second, against 2 left of 3 per minute.
    assert (first["RateLimit-Limit"], first["RateLimit-Remaining"]) == ("2", "1")
    await limiter.hit("payments", key, "2/second;3/minute")

    with pytest.raises(RateLimited) as per_second:
        await limiter.hit("payments", key, "2/second;3/minute")
    assert per_second.value.limit == "2 per 1 second"
    assert per_second.value.retry_after == 1

    # Honouring Retry-After is enough, and the refused hit spent nothing from the minute limit:
    # the third unit of 3 per minute is still there.
    await asyncio.sleep(per_second.value.retry_after)
    third = await limiter.hit("payments", key, "2/second;3/minute")
    assert (third["RateLimit-Limit"], third["RateLimit-Remaining"]) == ("3", "0")

    with pytest.raises(RateLimited) as per_minute:
        await limiter.hit("payments", key, "2/second;3/minute")
    assert per_minute.value.limit == "3 per 1 minute"
    assert per_minute.value.retry_after > 1


async def test_an_unreachable_redis_fails_open_and_warns_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}/0", warn_every=3600)
    key = user()
    try:
        with caplog.at_level(logging.WARNING, logger="hub.ratelimit"):
            for _ in range(3):
                assert await limiter.hit("payments", key, "1/minute") == {}
    finally:
        await limiter.close()
    warnings = [r for r in caplog.records if r.name == "hub.ratelimit"]
    assert len(warnings) == 1
    assert "Redis unreachable" in warnings[0].getMessage()


def test_limit_strings_are_parsed_once_and_checked() -> None:
    assert parse_limits("3/minute;2/second") is parse_limits("3/minute;2/second")
    assert [str(item) for item in parse_limits("3/minute;2/second")] == [
        "2 per 1 second",
        "3 per 1 minute",
    ]
    with pytest.raises(ValueError):
        parse_limits("ten a minute")


async def test_a_request_refused_for_one_key_spends_nothing_from_the_other(services) -> None:
    limiter = RateLimiter(services.redis_url)
    try:
        scope, user, ip = "payments", f"user:{uuid.uuid4().hex}", f"ip:{uuid.uuid4().hex}"
        other_user = f"user:{uuid.uuid4().hex}"
        await limiter.hit(scope, [other_user, ip], "2/minute")
        await limiter.hit(scope, [other_user, ip], "2/minute")
        with pytest.raises(RateLimited):
            await limiter.hit(scope, [user, ip], "2/minute")  # the IP is spent, not the user
        await limiter.hit(scope, [user, f"ip:{uuid.uuid4().hex}"], "2/minute")
        headers = await limiter.hit(scope, [user, f"ip:{uuid.uuid4().hex}"], "2/minute")
        assert headers["RateLimit-Remaining"] == "0"  # the tightest of the two keys
    finally:
        await limiter.close()


async def test_a_limiter_set_to_fail_closed_refuses_without_redis() -> None:
    from hub.ratelimit import LimiterUnavailable

    limiter = RateLimiter(f"redis://127.0.0.1:{free_port()}/0", fail_open=False)
    try:
        with pytest.raises(LimiterUnavailable):
            await limiter.hit("payments", "user:x", "5/minute")
    finally:
        await limiter.close()
