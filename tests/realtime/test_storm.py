"""Connects that arrive together (a node restarted, a deploy): their reads of Redis and the
event log go out together (realtime.coalesce), and each socket still gets exactly its own."""

from __future__ import annotations

import asyncio

import socketio
from redis.asyncio import Redis

from ledger.accounts import Role
from realtime.presence import user_key
from tests.conftest import create_user, hub_of_app, token
from tests.realtime.test_recovery import connect, numbers, write


async def test_sockets_connecting_at_once_each_recover_their_own_log(live, sessions, uid):
    users = [uid("fan") for _ in range(40)]
    last_ids: dict[str, int | None] = {}
    for i, user in enumerate(users):
        await create_user(sessions, user, Role.FAN)
        written = await write(sessions, user, 1, 2, 3)
        # every other one a returning client that saw its first event; the rest fresh ones
        last_ids[user] = written[0].id if i % 2 else None
    positions = hub_of_app(live.server.config.app).realtime.delivery._positions
    batches, requests = positions.batches, positions.requests

    probes = await asyncio.gather(*(connect(live, user, last_ids[user]) for user in users))
    outcomes = await asyncio.gather(*(probe.wait_for("recovered") for probe in probes))
    try:
        for user, probe, [outcome] in zip(users, probes, outcomes, strict=True):
            assert outcome["recovered"] is True
            if last_ids[user] is None:
                assert numbers(probe) == [] and outcome["missed"] == 0
            else:
                assert numbers(probe) == [2, 3] and outcome["missed"] == 2
        # the reads went out together: fewer statements than connects
        assert positions.requests - requests == len(users)
        assert positions.batches - batches < len(users)
    finally:
        await asyncio.gather(*(probe.close() for probe in probes))


async def test_a_users_limit_holds_for_connects_at_once_after_redis_lost_its_scripts(
    live, services, sessions, uid
) -> None:
    """Twelve connects of one user at once, right after Redis forgot its scripts (as after a
    restart): admitted together, ten get in and two are refused, as one by one."""
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    redis = Redis.from_url(services.redis_url)
    try:
        await redis.script_flush()
    finally:
        await redis.aclose()
    clients = [socketio.AsyncClient(reconnection=False) for _ in range(12)]
    refusals: list = []
    for client in clients:
        client.on("connect_error", lambda data: refusals.append(data))

    async def attempt(client: socketio.AsyncClient) -> bool:
        try:
            await client.connect(
                live.url,
                auth={"token": token(user, "fan")},
                transports=["websocket"],
                wait_timeout=5,
            )
        except socketio.exceptions.ConnectionError:
            return False
        return True

    try:
        admitted = await asyncio.gather(*(attempt(client) for client in clients))
        assert sum(admitted) == 10
        assert [r["data"]["type"] for r in refusals] == ["too_many_connections"] * 2
        realtime = hub_of_app(live.server.config.app).realtime
        assert await realtime.presence.count(user_key(user)) == 10
    finally:
        await asyncio.gather(*(c.disconnect() for c in clients if c.connected))
