"""Publishing committed events: through Redis to the user's sockets, or left unpublished."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from hub.embedded import free_port
from ledger.accounts import Role
from ledger.db import unit_of_work
from ledger.events import record_events
from ledger.schema import events
from realtime.publisher import Publisher, write_only_emitter
from realtime.server import PublishFailed
from tests.conftest import create_user, token


async def published(sessions, ids: list[int]) -> list[bool]:
    async with sessions() as session:
        rows = await session.execute(
            select(events.c.published_at).where(events.c.id.in_(ids)).order_by(events.c.id)
        )
        return [row.published_at is not None for row in rows]


async def test_a_worker_reaches_a_socket_on_the_server(live, services, sessions, sockets, uid):
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    probe = sockets()
    await probe.connect(live.url, {"token": token(user, "fan")})
    async with unit_of_work(sessions) as uow:
        written = await record_events(uow.session, [(user, "test.pinged", {"n": 1})])

    await Publisher(write_only_emitter(services.redis_url), sessions).publish(written)

    [envelope] = await probe.wait_for("test.pinged")
    assert envelope["id"] == written[0].id and envelope["data"] == {"n": 1}
    assert await published(sessions, [written[0].id]) == [True]


async def test_when_redis_is_down_the_events_stay_unpublished(sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    async with unit_of_work(sessions) as uow:
        written = await record_events(uow.session, [(user, "test.lost", {})] * 2)

    dead = write_only_emitter(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(PublishFailed):
        await Publisher(dead, sessions).publish(written)

    assert await published(sessions, [event.id for event in written]) == [False, False]
