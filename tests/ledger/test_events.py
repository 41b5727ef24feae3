"""The event log's per-user order is its commit order."""

from __future__ import annotations

import asyncio

import pytest

from ledger.accounts import Role
from ledger.db import unit_of_work
from ledger.events import record_events
from tests.conftest import create_user


async def test_a_later_commit_gets_a_later_seq_even_with_an_earlier_start(sessions, uid) -> None:
    """Transaction A writes first and commits last; B starts after A wrote, so B must wait for
    A's commit and number its event after A's: replaying by seq can never skip A."""
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    a_wrote, a_may_commit = asyncio.Event(), asyncio.Event()

    async def a() -> int:
        async with unit_of_work(sessions) as uow:
            [event] = await record_events(uow.session, [(user, "test.a", {})])
            a_wrote.set()
            await a_may_commit.wait()
        return event.seq

    async def b() -> int:
        await a_wrote.wait()
        async with unit_of_work(sessions) as uow:
            [event] = await record_events(uow.session, [(user, "test.b", {})])
        return event.seq

    task_a, task_b = asyncio.create_task(a()), asyncio.create_task(b())
    await a_wrote.wait()
    await asyncio.sleep(0.3)
    assert not task_b.done(), "B numbered its event while A was still open"
    a_may_commit.set()
    seq_a, seq_b = await task_a, await task_b
    assert seq_b == seq_a + 1


async def test_seqs_are_contiguous_per_user(sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)

    async def write(n: int) -> list[int]:
        async with unit_of_work(sessions) as uow:
            written = await record_events(uow.session, [(user, "test", {"n": n})] * 3)
        return [event.seq for event in written]

    batches = await asyncio.gather(*(write(n) for n in range(8)))
    seqs = sorted(seq for batch in batches for seq in batch)
    assert seqs == list(range(1, 25))
    for batch in batches:
        assert batch == list(range(batch[0], batch[0] + 3))


async def test_events_of_several_users_come_back_in_the_order_given(sessions, uid) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, fan, Role.FAN)
    await create_user(sessions, creator, Role.CREATOR)
    pending = [
        (creator, "test.first", {"n": 1, "nested": {"b": [1, 2], "a": None}}),
        (fan, "test.second", {"n": 2}),
        (creator, "test.third", {"n": 3}),
    ]
    async with unit_of_work(sessions) as uow:
        written = await record_events(uow.session, pending)
    assert [(e.user_id, e.type, dict(e.data)) for e in written] == pending
    assert [e.seq for e in written] == [1, 1, 2]
    assert [e.id for e in written] == sorted(e.id for e in written)


async def test_an_event_for_an_unknown_user_is_refused(sessions, uid) -> None:
    fan = uid("fan")
    await create_user(sessions, fan, Role.FAN)
    with pytest.raises(AssertionError, match="unknown user nobody"):
        async with unit_of_work(sessions) as uow:
            await record_events(uow.session, [(fan, "test", {}), ("nobody", "test", {})])
