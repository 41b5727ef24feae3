"""PostgreSQL stopped under a running hub: money routes answer 503 with Retry-After, and the
hub recovers by itself when it returns."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
import warnings
from pathlib import Path

import httpx

from hub.embedded import EmbeddedPostgres
from ledger.accounts import Role
from ledger.db import make_engine, make_sessions
from ledger.migrate import upgrade
from ledger.money import Money
from tests.conftest import FAST_POSTGRES, Services, auth, create_user, hub_server, make_settings


async def test_postgres_stopped_and_started_under_the_hub(services: Services) -> None:
    home = Path(tempfile.mkdtemp(prefix="hub-pg-outage-"))
    postgres = EmbeddedPostgres(home / "postgres", FAST_POSTGRES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        port, _ = await asyncio.to_thread(postgres.start)
    url = postgres.url(port)
    await asyncio.to_thread(upgrade, url)
    engine = make_engine(url)
    sessions = make_sessions(engine)
    fan, creator = f"fan-{uuid.uuid4().hex[:8]}", f"creator-{uuid.uuid4().hex[:8]}"
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(10_000, "NGN"))
    await engine.dispose()
    server = hub_server(make_settings(services, database_url=url))
    await server.start()
    body = {"creator_id": creator, "amount": 1_000, "currency": "NGN"}
    try:
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
    finally:
        await server.stop()
        await asyncio.to_thread(postgres.stop)
        shutil.rmtree(home, ignore_errors=True)


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
