"""Group commit through the real entry points: tips that arrive together share a transaction and
keep their own answers; a hub killed with batches in flight loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from hub.embedded import free_port
from ledger.accounts import Role
from ledger.checks import run_checks
from ledger.idempotency import transfer_reference
from ledger.money import Money
from tests.conftest import (
    JWT_SECRET,
    LiveServer,
    Services,
    SocketProbe,
    auth,
    create_user,
    hub_of_app,
    hub_server,
    make_settings,
    token,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def one_lane(services: Services) -> AsyncIterator[LiveServer]:
    """A node that commits one batch at a time: what arrives meanwhile waits for the next."""
    server = hub_server(make_settings(services, group_commit_lanes=1))
    await server.start()
    yield server
    await server.stop()


async def test_tips_arriving_together_share_commits_and_keep_their_own_answers(
    one_lane: LiveServer, sessions, uid: Callable[[str], str]
) -> None:
    fan, poor, creator = uid("fan"), uid("poor"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(100_000, "NGN"))
    await create_user(sessions, poor, Role.FAN, fund=Money(10, "NGN"))
    tips = hub_of_app(one_lane.server.config.app).tips
    batches, commands = tips.batches, tips.commands
    async with httpx.AsyncClient(base_url=one_lane.url, timeout=30) as client:

        async def tip(who: str, to: str, amount: int, key: str) -> httpx.Response:
            return await client.post(
                "/api/v1/tips",
                json={"creator_id": to, "amount": amount, "currency": "NGN"},
                headers={**auth(who, "fan"), "Idempotency-Key": key},
            )

        lone = await tip(fan, creator, 100, "lone")
        assert lone.status_code == 201
        requests = [tip(fan, creator, 100, f"k{n}") for n in range(40)]
        requests += [
            tip(poor, creator, 500, "poor"),
            tip(fan, uid("nobody"), 100, "nobody"),
            tip(fan, creator, 999, "lone"),  # the same key, another request
        ]
        answers = await asyncio.gather(*requests)
    assert [a.status_code for a in answers] == [201] * 40 + [402, 404, 422]
    assert answers[-1].json()["error"]["type"] == "idempotency_key_reused"
    ids = {a.json()["id"] for a in answers[:40]}
    assert len(ids) == 40
    # the tip to nobody is refused before it joins a batch (Hub.check_creator: the creator
    # must be of the fan's app)
    assert tips.commands - commands == 43
    assert tips.batches - batches < 43  # some of them shared a commit
    async with sessions() as session:
        assert await run_checks(session) == []
        wallet = await session.scalar(
            text(
                "SELECT balance FROM accounts WHERE owner_id = :fan AND kind = 'wallet' "
                "AND currency = 'NGN'"
            ),
            {"fan": fan},
        )
    assert wallet == 100_000 - 41 * 100


class HubProcess:
    """`python -m hub serve` as its own process, on the suite's PostgreSQL and Redis."""

    def __init__(self, services: Services) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "HUB_DATABASE_URL": services.database_url,
            "HUB_REDIS_URL": services.redis_url,
            "HUB_JWT_SECRET": JWT_SECRET,
            "HUB_PORT": str(self.port),
            "HUB_RATE_LIMIT_TRANSFERS": "1000000/minute",
            "HUB_CURRENCIES": "NGN,USD",
            "HUB_PLATFORM_FEE_BPS": "1000",
            "HUB_LOG_LEVEL": "warning",
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    async def ready(self) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            for _ in range(200):
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert self.process.poll() is None, "the hub exited"
                await asyncio.sleep(0.05)
        raise AssertionError("the hub did not get ready")

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


async def test_a_hub_killed_with_batches_in_flight_loses_nothing_and_doubles_nothing(
    services: Services, sessions, uid: Callable[[str], str]
) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(1_000_000, "NGN"))
    keys = [uuid.uuid4().hex for _ in range(300)]
    body = {"creator_id": creator, "amount": 100, "currency": "NGN"}
    first = HubProcess(services)
    second: HubProcess | None = None
    live = SocketProbe()  # the creator's page, on the node that dies
    try:
        await first.ready()
        await live.connect(first.url, {"token": token(creator, "creator")})
        answered: dict[str, httpx.Response] = {}
        limits = httpx.Limits(max_connections=32)

        enough = asyncio.Event()

        async def send(client: httpx.AsyncClient, key: str) -> None:
            with contextlib.suppress(httpx.TransportError):  # no answer: it retries its key
                answered[key] = await client.post(
                    "/api/v1/tips",
                    json=body,
                    headers={**auth(fan, "fan"), "Idempotency-Key": key},
                )
                if len(answered) >= 40:
                    enough.set()

        async with httpx.AsyncClient(base_url=first.url, timeout=10, limits=limits) as client:
            sending = asyncio.gather(*(send(client, key) for key in keys))
            await asyncio.wait_for(enough.wait(), 30)
            first.kill()  # with batches in flight
            await sending
        assert all(r.status_code == 201 for r in answered.values())
        assert 40 <= len(answered) < len(keys)
        heard = {event["data"]["tip_id"] for event in live.of_type("tip.received")}

        second = HubProcess(services)
        await second.ready()
        async with httpx.AsyncClient(base_url=second.url, timeout=30, limits=limits) as client:
            retried = await asyncio.gather(
                *(
                    client.post(
                        "/api/v1/tips",
                        json=body,
                        headers={**auth(fan, "fan"), "Idempotency-Key": key},
                    )
                    for key in keys
                )
            )
        assert [r.status_code for r in retried] == [201] * len(keys)
        for key, again in zip(keys, retried, strict=True):
            if key in answered:  # the first answer was saved with the money: replayed as is
                assert again.headers.get("idempotent-replayed") == "true"
                assert again.content == answered[key].content
        async with sessions() as session:
            postings = (
                await session.execute(
                    text(
                        "SELECT t.reference, t.id, "
                        "(SELECT count(*) FROM events e WHERE e.data->>'tip_id' = t.id::text) "
                        "FROM transfers t WHERE t.reference = ANY(:references)"
                    ),
                    {"references": [transfer_reference("tip", fan, key) for key in keys]},
                )
            ).all()
            assert await run_checks(session) == []
        # Exactly one posting per key, each with its four events (tip.received and tip.sent
        # carry the tip id; the two balance.updated events do not).
        assert len(postings) == len(keys)
        assert all(count == 2 for _, _, count in postings)
        committed = {transfer_id for _, transfer_id, _ in postings}
        assert heard <= committed  # nothing was published that did not commit
        body_ids = {json.loads(r.content)["id"] for r in answered.values()}
        assert body_ids <= committed
    finally:
        await live.close()
        first.stop()
        if second is not None:
            second.stop()
