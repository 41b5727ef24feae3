"""Tips end to end: HTTP in, ledger in PostgreSQL, events out over Socket.IO through Redis."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.accounts import Kind
from ledger.schema import accounts, entries, events, tips
from tests.conftest import FEE_BPS, LiveServer, People, auth, token


async def balance(
    sessions: async_sessionmaker[AsyncSession], owner: str | None, kind: Kind, currency="NGN"
) -> int:
    async with sessions() as session:
        owner_clause = (
            accounts.c.owner_id.is_(None) if owner is None else accounts.c.owner_id == owner
        )
        value = await session.scalar(
            select(accounts.c.balance).where(
                owner_clause, accounts.c.kind == kind.value, accounts.c.currency == currency
            )
        )
        return int(value or 0)


async def event_count(sessions: async_sessionmaker[AsyncSession], user_id: str) -> int:
    async with sessions() as session:
        return int(
            await session.scalar(select(func.count()).where(events.c.user_id == user_id)) or 0
        )


def tip_body(people: People, amount: int = 10_000, **extra: object) -> dict[str, object]:
    return {"creator_id": people.creator, "amount": amount, "currency": "NGN", **extra}


def headers(people: People, key: str | None = None) -> dict[str, str]:
    return {**auth(people.fan, "fan"), "Idempotency-Key": key or uuid.uuid4().hex}


async def test_tip_reaches_the_creator_live_with_the_right_amounts(
    live: LiveServer, http: httpx.AsyncClient, people: People, sessions, sockets
) -> None:
    creator_socket, fan_socket = sockets(), sockets()
    await creator_socket.connect(live.url, {"token": token(people.creator, "creator")})
    await fan_socket.connect(live.url, {"token": token(people.fan, "fan")})
    fee_before = await balance(sessions, None, Kind.PLATFORM_FEE)

    response = await http.post(
        "/api/v1/tips", json=tip_body(people, 12_345, message="gg"), headers=headers(people)
    )

    assert response.status_code == 201, response.text
    body = response.json()
    fee = 12_345 * FEE_BPS // 10_000
    assert body["amount"] == {"amount": 12_345, "currency": "NGN"}
    assert body["fee"] == {"amount": fee, "currency": "NGN"}
    assert body["net"] == {"amount": 12_345 - fee, "currency": "NGN"}
    assert sum(entry["amount"] for entry in body["entries"]) == 0

    [alert] = await creator_socket.wait_for("tip.received")
    assert alert["type"] == "tip.received"
    assert {"id", "type", "occurred_at", "data"} <= alert.keys()
    assert alert["data"]["amount"] == 12_345
    assert alert["data"]["fee"] == fee
    assert alert["data"]["net"] == 12_345 - fee
    assert alert["data"]["fan_id"] == people.fan
    assert alert["data"]["message"] == "gg"
    [creator_balance] = await creator_socket.wait_for("balance.updated")
    assert creator_balance["data"]["balance"] == 12_345 - fee
    assert creator_balance["data"]["kind"] == "earnings"
    [fan_balance] = await fan_socket.wait_for("balance.updated")
    assert fan_balance["data"]["balance"] == 100_000 - 12_345
    await fan_socket.wait_for("tip.sent")
    # Nobody hears what is not theirs.
    assert not fan_socket.of_type("tip.received")

    assert await balance(sessions, people.fan, Kind.WALLET) == 100_000 - 12_345
    assert await balance(sessions, people.creator, Kind.EARNINGS) == 12_345 - fee
    assert await balance(sessions, None, Kind.PLATFORM_FEE) - fee_before == fee
    # The node marks what it published in batches (every 100 ms): poll, for less than the
    # sweeper's 2 s (the sweeper must not be what marks them).
    for _ in range(15):
        async with sessions() as session:
            unpublished = await session.scalar(
                select(func.count()).where(
                    # The fan's funding event was written by the fixture, which publishes nothing.
                    events.c.user_id.in_([people.fan, people.creator]),
                    events.c.occurred_at
                    >= select(func.min(events.c.occurred_at))
                    .where(events.c.user_id == people.creator)
                    .scalar_subquery(),
                    events.c.published_at.is_(None),
                )
            )
        if unpublished == 0:
            break
        await asyncio.sleep(0.1)
    assert unpublished == 0


async def test_wallet_shows_the_callers_balances(http: httpx.AsyncClient, people: People) -> None:
    response = await http.get("/api/v1/wallet", headers=auth(people.fan, "fan"))
    assert response.status_code == 200
    ngn = next(b for b in response.json()["balances"] if b["currency"] == "NGN")
    assert ngn["kind"] == "wallet"
    assert ngn["balance"] == 100_000
    assert ngn["available"] == 100_000


async def test_insufficient_funds_posts_and_emits_nothing(
    live: LiveServer, http: httpx.AsyncClient, people: People, sessions, sockets
) -> None:
    creator_socket = sockets()
    await creator_socket.connect(live.url, {"token": token(people.creator, "creator")})
    events_before = await event_count(sessions, people.creator)

    response = await http.post(
        "/api/v1/tips", json=tip_body(people, 100_001), headers=headers(people)
    )

    assert response.status_code == 402
    assert response.json()["error"]["type"] == "insufficient_funds"
    assert await balance(sessions, people.fan, Kind.WALLET) == 100_000
    assert await balance(sessions, people.creator, Kind.EARNINGS) == 0
    assert await event_count(sessions, people.creator) == events_before
    async with sessions() as session:
        assert not await session.scalar(select(func.count()).where(tips.c.fan_id == people.fan))
    # A tip that did succeed afterwards is the first thing the creator hears.
    ok = await http.post("/api/v1/tips", json=tip_body(people, 1_000), headers=headers(people))
    assert ok.status_code == 201
    await creator_socket.wait_for("tip.received")
    assert next(e for e, _ in creator_socket.events if e != "recovered") == "tip.received"
    assert len(creator_socket.of_type("tip.received")) == 1


async def test_same_key_replays_the_response_and_posts_once(
    http: httpx.AsyncClient, people: People, sessions
) -> None:
    key = uuid.uuid4().hex
    first = await http.post("/api/v1/tips", json=tip_body(people), headers=headers(people, key))
    second = await http.post("/api/v1/tips", json=tip_body(people), headers=headers(people, key))

    assert first.status_code == second.status_code == 201
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert await balance(sessions, people.fan, Kind.WALLET) == 100_000 - 10_000
    async with sessions() as session:
        assert await session.scalar(select(func.count()).where(tips.c.fan_id == people.fan)) == 1


async def test_a_business_failure_is_replayed_too(http: httpx.AsyncClient, people: People) -> None:
    key = uuid.uuid4().hex
    first = await http.post(
        "/api/v1/tips", json=tip_body(people, 200_000), headers=headers(people, key)
    )
    second = await http.post(
        "/api/v1/tips", json=tip_body(people, 200_000), headers=headers(people, key)
    )
    assert first.status_code == second.status_code == 402
    assert second.headers["idempotent-replayed"] == "true"


async def test_same_key_with_another_request_is_refused(
    http: httpx.AsyncClient, people: People, sessions
) -> None:
    key = uuid.uuid4().hex
    await http.post("/api/v1/tips", json=tip_body(people, 1_000), headers=headers(people, key))
    other = await http.post(
        "/api/v1/tips", json=tip_body(people, 2_000), headers=headers(people, key)
    )
    assert other.status_code == 422
    assert other.json()["error"]["type"] == "idempotency_key_reused"
    assert await balance(sessions, people.fan, Kind.WALLET) == 100_000 - 1_000


async def test_keys_are_scoped_per_caller(
    http: httpx.AsyncClient, people: People, sessions, uid
) -> None:
    from ledger.accounts import Role
    from ledger.money import Money
    from tests.conftest import create_user

    other_fan = uid("fan")
    await create_user(sessions, other_fan, Role.FAN, fund=Money(50_000, "NGN"))
    key = uuid.uuid4().hex
    mine = await http.post("/api/v1/tips", json=tip_body(people), headers=headers(people, key))
    theirs = await http.post(
        "/api/v1/tips",
        json=tip_body(people),
        headers={**auth(other_fan, "fan"), "Idempotency-Key": key},
    )
    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]


async def test_concurrent_tips_never_overdraw_the_wallet(
    http: httpx.AsyncClient, people: People, sessions
) -> None:
    # ₦1,000.00 in the wallet, twelve concurrent ₦150.00 tips: exactly six fit.
    responses = await asyncio.gather(
        *(
            http.post("/api/v1/tips", json=tip_body(people, 15_000), headers=headers(people))
            for _ in range(12)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 6 + [402] * 6
    assert await balance(sessions, people.fan, Kind.WALLET) == 100_000 - 6 * 15_000
    async with sessions() as session:
        wallet_sum = await session.scalar(
            select(func.sum(entries.c.amount))
            .select_from(entries.join(accounts, entries.c.account_id == accounts.c.id))
            .where(
                accounts.c.owner_id == people.fan,
                accounts.c.kind == "wallet",
                accounts.c.currency == "NGN",
            )
        )
    assert wallet_sum == 100_000 - 6 * 15_000


async def test_concurrent_requests_with_one_key_post_once(
    http: httpx.AsyncClient, people: People, sessions
) -> None:
    key = uuid.uuid4().hex
    responses = await asyncio.gather(
        *(
            http.post("/api/v1/tips", json=tip_body(people), headers=headers(people, key))
            for _ in range(8)
        )
    )
    statuses = {r.status_code for r in responses}
    assert statuses <= {201, 409}, [r.text for r in responses]
    assert 201 in statuses
    for r in responses:
        if r.status_code == 409:
            assert r.json()["error"]["type"] == "idempotency_in_flight"
            assert r.headers["retry-after"]
    assert await balance(sessions, people.fan, Kind.WALLET) == 100_000 - 10_000


async def test_unknown_creator_is_404(http: httpx.AsyncClient, people: People) -> None:
    body = {**tip_body(people), "creator_id": "nobody-" + uuid.uuid4().hex}
    response = await http.post("/api/v1/tips", json=body, headers=headers(people))
    assert response.status_code == 404
    assert response.json()["error"] == {
        "type": "creator_not_found",
        "message": response.json()["error"]["message"],
        "param": "creator_id",
    }


async def test_a_fan_is_not_a_creator(http: httpx.AsyncClient, people: People, uid, sessions):
    from ledger.accounts import Role
    from tests.conftest import create_user

    other_fan = uid("fan")
    await create_user(sessions, other_fan, Role.FAN)
    body = {**tip_body(people), "creator_id": other_fan}
    response = await http.post("/api/v1/tips", json=body, headers=headers(people))
    assert response.status_code == 404


async def test_invalid_input_is_422_naming_the_field(
    http: httpx.AsyncClient, people: People, sessions
) -> None:
    cases = [
        ({"amount": 0}, "amount"),
        ({"amount": -5}, "amount"),
        ({"amount": 10.5}, "amount"),
        ({"amount": "100"}, "amount"),
        ({"amount": True}, "amount"),
        ({"currency": "XYZ"}, "currency"),
        ({"currency": 566}, "currency"),
        ({"message": "x" * 281}, "message"),
        ({"creator_id": ""}, "creator_id"),
        ({"surprise": 1}, "surprise"),
    ]
    for change, field in cases:
        response = await http.post(
            "/api/v1/tips", json={**tip_body(people), **change}, headers=headers(people)
        )
        assert response.status_code == 422, (change, response.text)
        error = response.json()["error"]
        assert error["param"] == field, (change, error)
        assert error["type"] == "invalid_request"
    ok = await http.post(
        "/api/v1/tips", json=tip_body(people, message="x" * 280), headers=headers(people)
    )
    assert ok.status_code == 201
    assert await balance(sessions, people.fan, Kind.WALLET) == 100_000 - 10_000


async def test_missing_idempotency_key_is_400(http: httpx.AsyncClient, people: People) -> None:
    response = await http.post(
        "/api/v1/tips", json=tip_body(people), headers=auth(people.fan, "fan")
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Idempotency-Key"
    too_long = await http.post(
        "/api/v1/tips", json=tip_body(people), headers=headers(people, "k" * 256)
    )
    assert too_long.status_code == 400


async def test_body_that_is_not_json_is_400(http: httpx.AsyncClient, people: People) -> None:
    response = await http.post("/api/v1/tips", content=b"{nope", headers=headers(people))
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_json"


async def test_ledger_rows_cannot_be_changed(sessions, people: People) -> None:
    import pytest
    from sqlalchemy.exc import DBAPIError

    for statement in ("UPDATE entries SET amount = amount + 1", "DELETE FROM transfers"):
        with pytest.raises(DBAPIError, match="immutable"):
            async with sessions() as session, session.begin():
                await session.execute(text(statement))
