"""PostgreSQL stopped under a running hub: money routes answer 503 with Retry-After, and the
hub recovers by itself when it returns."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import text

from hub.embedded import EmbeddedPostgres
from ledger.accounts import Role
from ledger.checks import run_checks
from ledger.db import make_engine, make_sessions
from ledger.idempotency import transfer_reference
from ledger.migrate import upgrade
from ledger.money import Money
from tests.conftest import (
    FAST_POSTGRES,
    LiveServer,
    Services,
    auth,
    create_user,
    hub_server,
    make_settings,
)


@dataclass(frozen=True)
class OwnPostgres:
    postgres: EmbeddedPostgres
    url: str
    fan: str
    creator: str


@contextlib.asynccontextmanager
async def own_postgres(funds: int) -> AsyncIterator[OwnPostgres]:
    """A PostgreSQL of the test's own, to stop and start under a hub: migrated, with a creator
    and a fan holding `funds` kobo."""
    home = Path(tempfile.mkdtemp(prefix="hub-pg-outage-"))
    postgres = EmbeddedPostgres(home / "postgres", FAST_POSTGRES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        port, _ = await asyncio.to_thread(postgres.start)
    url = postgres.url(port)
    try:
        await asyncio.to_thread(upgrade, url)
        engine = make_engine(url)
        sessions = make_sessions(engine)
        fan, creator = f"fan-{uuid.uuid4().hex[:8]}", f"creator-{uuid.uuid4().hex[:8]}"
        await create_user(sessions, creator, Role.CREATOR)
        await create_user(sessions, fan, Role.FAN, fund=Money(funds, "NGN"))
        await engine.dispose()
        yield OwnPostgres(postgres, url, fan, creator)
    finally:
        await asyncio.to_thread(postgres.stop)
        shutil.rmtree(home, ignore_errors=True)


async def test_postgres_stopped_and_started_under_the_hub(services: Services) -> None:
    async with own_postgres(10_000) as db:
        server = hub_server(make_settings(services, database_url=db.url))
        await server.start()
        try:
            await _stopped_and_started(server, db)
        finally:
            await server.stop()


async def _stopped_and_started(server: LiveServer, db: OwnPostgres) -> None:
    postgres, fan = db.postgres, db.fan
    body = {"creator_id": db.creator, "amount": 1_000, "currency": "NGN"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:

        async def tip() -> httpx.Response:
            return await client.post(
                "/api/v1/tips",
                json=body,
                headers={**auth(fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
            )

        assert (await tip()).status_code == 201
        await asyncio.to_thread(postgres.stop)

        down = await tip()
        assert down.status_code == 503, down.text
        assert down.headers["retry-after"] == "1"
        assert down.json()["error"]["type"] == "service_unavailable"
        wallet = await client.get("/api/v1/wallet", headers=auth(fan, "fan"))
        assert wallet.status_code == 503
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["checks"]["postgresql"] != "ok"

        await asyncio.to_thread(postgres.start)
        for _ in range(50):  # the pool reconnects on its own; bounded wait
            response = await tip()
            # A pooled connection that died with the server fails its request with 503
            # (never a 500), and the pool is renewed.
            assert response.status_code in (201, 503), response.text
            if response.status_code == 201:
                break
            await asyncio.sleep(0.2)
        assert response.status_code == 201, response.text
        balances = (await client.get("/api/v1/wallet", headers=auth(fan, "fan"))).json()
        ngn = next(b for b in balances["balances"] if b["currency"] == "NGN")
        assert ngn["balance"] == 10_000 - 2_000  # the 503 moved no money


async def test_redis_away_with_limits_set_to_fail_closed_is_503(services: Services) -> None:
    from hub.embedded import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    server = hub_server(
        make_settings(
            services, redis_url=dead, rate_limit_fail_open=False, rate_limit_transfers="5/minute"
        )
    )
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            response = await client.post(
                "/api/v1/tips",
                json={"creator_id": "c", "amount": 1, "currency": "NGN"},
                headers={**auth("someone", "fan"), "Idempotency-Key": uuid.uuid4().hex},
            )
    finally:
        await server.stop()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"


async def test_read_only_routes_may_use_a_read_url(services: Services, people) -> None:
    server = hub_server(make_settings(services, database_read_url=services.database_url))
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            wallet = await client.get("/api/v1/wallet", headers=auth(people.fan, "fan"))
            statement = await client.get("/api/v1/transactions", headers=auth(people.fan, "fan"))
    finally:
        await server.stop()
    assert wallet.status_code == statement.status_code == 200
    assert statement.json()["data"][0]["amount"]["amount"] == 100_000


async def test_postgres_restarted_under_load_answers_201_or_503_and_posts_each_key_once(
    services: Services,
) -> None:
    """Tips keep coming while PostgreSQL stops and starts again: each is answered 201 or 503,
    never 500; retried with its key, each posts exactly once; the books balance."""
    async with own_postgres(1_000_000) as db:
        server = hub_server(make_settings(services, database_url=db.url))
        await server.start()
        try:
            await _restarted_under_load(server, db)
        finally:
            await server.stop()


async def _restarted_under_load(server: LiveServer, db: OwnPostgres) -> None:
    postgres, fan = db.postgres, db.fan
    keys = [uuid.uuid4().hex for _ in range(400)]
    body = {"creator_id": db.creator, "amount": 100, "currency": "NGN"}
    async with httpx.AsyncClient(
        base_url=server.url, timeout=30, limits=httpx.Limits(max_connections=16)
    ) as client:

        async def tip(key: str) -> int:
            response = await client.post(
                "/api/v1/tips",
                json=body,
                headers={**auth(fan, "fan"), "Idempotency-Key": key},
            )
            assert response.status_code in (201, 503), response.text
            return response.status_code

        async def restart() -> None:
            await asyncio.sleep(0.3)
            await asyncio.to_thread(postgres.stop)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(postgres.start)

        statuses, _ = await asyncio.gather(asyncio.gather(*(tip(key) for key in keys)), restart())
        assert 503 in statuses  # the outage was seen
        waiting = [key for key, status in zip(keys, statuses, strict=True) if status != 201]
        for _ in range(100):  # bounded: the pool reconnects on its own
            if not waiting:
                break
            again = await asyncio.gather(*(tip(key) for key in waiting))
            waiting = [key for key, status in zip(waiting, again, strict=True) if status != 201]
            await asyncio.sleep(0.1)
        assert waiting == []
    engine = make_engine(db.url)  # after the restart: no connection from before it
    async with make_sessions(engine)() as session:
        posted = await session.scalar(
            text("SELECT count(*) FROM transfers WHERE reference = ANY(:references)"),
            {"references": [transfer_reference("tip", fan, key) for key in keys]},
        )
        wallet = await session.scalar(
            text(
                "SELECT balance FROM accounts WHERE owner_id = :fan AND kind = 'wallet' "
                "AND currency = 'NGN'"
            ),
            {"fan": fan},
        )
        assert await run_checks(session) == []
    await engine.dispose()
    assert posted == len(keys)
    assert wallet == 1_000_000 - 100 * len(keys)
