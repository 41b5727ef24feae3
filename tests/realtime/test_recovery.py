"""Recovery after a reconnect, in order and without duplicates; gap filling when publish order
is not commit order; refusals of client-sent events."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlalchemy import text

from ledger.accounts import Role
from ledger.db import unit_of_work
from ledger.events import record_events
from realtime import bus
from tests.conftest import SocketProbe, create_user, token


async def connect(live, user: str, last_event_id: int | None = None) -> SocketProbe:
    probe = SocketProbe()
    auth: dict[str, object] = {"token": token(user, "fan")}
    if last_event_id is not None:
        auth["last_event_id"] = last_event_id
    await probe.connect(live.url, auth)
    return probe


async def write(sessions, user: str, *numbers: int) -> list:
    async with unit_of_work(sessions) as uow:
        return await record_events(uow.session, [(user, "test.event", {"n": n}) for n in numbers])


async def publish(services, events) -> None:
    redis = Redis.from_url(services.redis_url)
    try:
        await bus.publish(redis, events)
    finally:
        await redis.aclose()


def numbers(probe: SocketProbe) -> list[int]:
    return [data["data"]["n"] for data in probe.of_type("test.event")]


async def test_a_reconnecting_client_gets_what_it_missed_in_order_then_recovered(
    live, services, sessions, uid
) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    first = await connect(live, user)
    [hello] = await first.wait_for("recovered")
    assert hello["recovered"] is True
    await publish(services, await write(sessions, user, 1, 2))
    seen = await first.wait_for("test.event", count=2)
    last_id = seen[-1]["id"]
    await first.close()

    await publish(services, await write(sessions, user, 3, 4, 5))  # nobody listening

    second = await connect(live, user, last_id)
    [outcome] = await second.wait_for("recovered")
    assert outcome == {"recovered": True, "missed": 3, "last_event_id": outcome["last_event_id"]}
    assert numbers(second) == [3, 4, 5]
    assert [event for event, _ in second.events] == ["test.event"] * 3 + ["recovered"]
    await publish(services, await write(sessions, user, 6))
    await second.wait_for("test.event", count=4)
    assert numbers(second) == [3, 4, 5, 6]
    await second.close()


async def test_a_client_that_received_nothing_yet_recovers_from_its_hello(
    live, services, sessions, uid
) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    first = await connect(live, user)
    [hello] = await first.wait_for("recovered")
    await first.close()
    await write(sessions, user, 1, 2)  # committed, never published: only the log has them
    again = await connect(live, user, hello["last_event_id"])
    [outcome] = await again.wait_for("recovered")
    assert outcome["recovered"] is True
    assert numbers(again) == [1, 2]
    await again.close()


async def test_a_gap_past_the_window_is_recovered_false(live, sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    old = await write(sessions, user, 1, 2, 3)
    async with sessions() as session, session.begin():  # what the retention job will do
        await session.execute(
            text("DELETE FROM events WHERE user_id = :u AND seq <= 2"), {"u": user}
        )
    probe = await connect(live, user, old[0].id)
    [outcome] = await probe.wait_for("recovered")
    assert outcome["recovered"] is False
    assert numbers(probe) == []  # never a partial recovery
    await probe.close()
    foreign = await connect(live, user, 10**12)
    assert (await foreign.wait_for("recovered"))[0]["recovered"] is False
    await foreign.close()


async def test_last_event_id_zero_replays_the_whole_kept_history(live, sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    await write(sessions, user, 1, 2, 3)
    probe = await connect(live, user, 0)
    assert (await probe.wait_for("recovered"))[0]["recovered"] is True
    assert numbers(probe) == [1, 2, 3]
    await probe.close()


async def test_an_event_that_committed_late_is_not_skipped(live, services, sessions, uid):
    """The trap: event ids are drawn before commit. Transaction A takes a low id and commits
    last; B (another user) takes a higher id and commits first; C (A's user) must wait for A.
    The client sees A's user's events in commit order, and a reconnect from the last one it
    saw misses nothing."""
    user, other = uid("fan"), uid("fan")
    await create_user(sessions, user, Role.FAN)
    await create_user(sessions, other, Role.FAN)
    probe = await connect(live, user)
    await probe.wait_for("recovered")
    a_wrote, a_commit = asyncio.Event(), asyncio.Event()
    written: dict[str, list] = {}

    async def a() -> None:
        async with unit_of_work(sessions) as uow:
            written["a"] = await record_events(uow.session, [(user, "test.event", {"n": 1})])
            a_wrote.set()
            await a_commit.wait()

    async def c() -> None:
        await a_wrote.wait()
        written["c"] = await write(sessions, user, 2)

    tasks = [asyncio.create_task(a()), asyncio.create_task(c())]
    await a_wrote.wait()
    written["b"] = await write(sessions, other, 99)
    assert written["b"][0].id > written["a"][0].id  # B's id is higher, and it committed first
    await asyncio.sleep(0.2)
    a_commit.set()
    await asyncio.gather(*tasks)
    assert written["c"][0].id > written["a"][0].id
    assert written["c"][0].seq == written["a"][0].seq + 1

    # Publish in the worst order: C before A. The node fills A from the log first.
    await publish(services, written["c"])
    await probe.wait_for("test.event", count=2)
    await publish(services, written["a"])
    await asyncio.sleep(0.2)
    assert numbers(probe) == [1, 2]  # in commit order, A's late commit not skipped, no duplicate
    await probe.close()


async def test_duplicates_on_the_bus_reach_the_client_once(live, services, sessions, uid):
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    probe = await connect(live, user)
    await probe.wait_for("recovered")
    events = await write(sessions, user, 1)
    for _ in range(3):
        await publish(services, events)
    await probe.wait_for("test.event")
    await publish(services, await write(sessions, user, 2))
    await probe.wait_for("test.event", count=2)
    assert numbers(probe) == [1, 2]
    await probe.close()


async def test_client_sent_joins_are_refused(live, sessions, uid) -> None:
    user, victim = uid("fan"), uid("fan")
    await create_user(sessions, user, Role.FAN)
    probe = await connect(live, user)
    await probe.wait_for("recovered")
    answer = await probe.client.call("join", {"room": f"user:{victim}"}, timeout=5)
    assert answer["error"]["type"] == "forbidden"
    await probe.close()


async def test_an_abusive_client_is_disconnected(live, sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    probe = await connect(live, user)
    await probe.wait_for("recovered")
    for _ in range(60):
        if not probe.client.connected:
            break
        await probe.client.emit("spam", {"x": 1})
    for _ in range(100):
        if not probe.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not probe.client.connected
    assert probe.of_type("hub.error")[0]["error"]["type"] == "rate_limited"
