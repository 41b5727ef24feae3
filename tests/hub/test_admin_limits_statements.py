"""The platform fee (admin, cached, invalidated on every node), rate limits, statements."""

from __future__ import annotations

import asyncio

import httpx

from tests.conftest import Services, auth, hub_server, make_settings
from tests.money import key


async def test_the_fee_is_admin_only_and_bounded(http, uid) -> None:
    admin = uid("admin")
    assert (
        await http.get("/api/v1/admin/platform-fee", headers=auth(uid("fan"), "fan"))
    ).status_code == 403
    for bps in (-1, 5_001, "100"):
        response = await http.put(
            "/api/v1/admin/platform-fee", json={"bps": bps}, headers=auth(admin, "admin")
        )
        assert response.status_code == 422, bps
    current = await http.get("/api/v1/admin/platform-fee", headers=auth(admin, "admin"))
    assert current.status_code == 200 and "bps" in current.json()


async def test_a_fee_change_reaches_every_node_at_once(services: Services, people, uid) -> None:
    admin = uid("admin")
    node_a, node_b = hub_server(make_settings(services)), hub_server(make_settings(services))
    await node_a.start()
    await node_b.start()
    try:
        async with (
            httpx.AsyncClient(base_url=node_a.url) as a,
            httpx.AsyncClient(base_url=node_b.url) as b,
        ):

            async def tip_fee(client: httpx.AsyncClient) -> tuple[int, int]:
                response = await client.post(
                    "/api/v1/tips",
                    json={"creator_id": people.creator, "amount": 10_000, "currency": "NGN"},
                    headers={**auth(people.fan, "fan"), **key()},
                )
                assert response.status_code == 201, response.text
                return response.json()["fee"]["amount"], response.json()["id"]

            assert (await tip_fee(a))[0] == 1_000  # node A now has the fee cached
            for bps in (250, 1_000):
                changed = await b.put(
                    "/api/v1/admin/platform-fee", json={"bps": bps}, headers=auth(admin, "admin")
                )
                assert changed.status_code == 200
                # The change message reaches node A's subscriber; allow it a moment, bounded.
                for _ in range(50):
                    fee, _ = await tip_fee(a)
                    if fee == 10_000 * bps // 10_000:
                        break
                    await asyncio.sleep(0.05)
                assert fee == 10_000 * bps // 10_000
    finally:
        await node_a.stop()
        await node_b.stop()


async def test_money_routes_are_rate_limited_across_nodes(services: Services, people) -> None:
    settings = make_settings(services, rate_limit_transfers="3/minute")
    nodes = [hub_server(settings), hub_server(settings)]
    for node in nodes:
        await node.start()
    try:
        statuses, limited = [], None
        for i in range(5):
            async with httpx.AsyncClient(base_url=nodes[i % 2].url) as client:
                response = await client.post(
                    "/api/v1/tips",
                    json={"creator_id": people.creator, "amount": 100, "currency": "NGN"},
                    headers={**auth(people.fan, "fan"), **key()},
                )
            statuses.append(response.status_code)
            if response.status_code == 201:
                assert "ratelimit-remaining" in response.headers
            if response.status_code == 429:
                limited = response
        assert statuses == [201, 201, 201, 429, 429]
        assert limited is not None
        assert limited.json()["error"]["type"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["ratelimit-remaining"] == "0"
    finally:
        for node in nodes:
            await node.stop()


async def test_the_statement_is_newest_first_paged_and_private(http, people, uid) -> None:
    for amount in (100, 200, 300, 400, 500):
        response = await http.post(
            "/api/v1/tips",
            json={"creator_id": people.creator, "amount": amount, "currency": "NGN"},
            headers={**auth(people.fan, "fan"), **key()},
        )
        assert response.status_code == 201
    seen, cursor = [], None
    while True:
        query = "?limit=2" + (f"&before={cursor}" if cursor else "")
        page = (
            await http.get(f"/api/v1/transactions{query}", headers=auth(people.fan, "fan"))
        ).json()
        seen += page["data"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert [e["amount"]["amount"] for e in seen] == [-500, -400, -300, -200, -100, 100_000]
    assert [e["id"] for e in seen] == sorted((e["id"] for e in seen), reverse=True)
    tips_only = (
        await http.get("/api/v1/transactions?kind=tip", headers=auth(people.fan, "fan"))
    ).json()["data"]
    assert len(tips_only) == 5
    creator = (
        await http.get(
            "/api/v1/transactions?account=earnings", headers=auth(people.creator, "creator")
        )
    ).json()["data"]
    assert [e["amount"]["amount"] for e in creator] == [450, 360, 270, 180, 90]
    stranger = (await http.get("/api/v1/transactions", headers=auth(uid("fan"), "fan"))).json()
    assert stranger["data"] == []
    for bad in ("limit=0", "limit=101", "limit=x", "account=platform_fee"):
        response = await http.get(f"/api/v1/transactions?{bad}", headers=auth(people.fan, "fan"))
        assert response.status_code == 422, bad


async def test_the_openapi_document_lists_every_route(http) -> None:
    document = (await http.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    for path in (
        "/api/v1/tips",
        "/api/v1/payments",
        "/api/v1/payments/{payment_id}",
        "/api/v1/content",
        "/api/v1/content/{content_id}/purchase",
        "/api/v1/payouts",
        "/api/v1/refunds",
        "/api/v1/admin/platform-fee",
        "/api/v1/transactions",
        "/api/v1/wallet",
        "/webhooks/{provider}",
    ):
        assert path in document["paths"], path
    tip_body = document["paths"]["/api/v1/tips"]["post"]["requestBody"]
    assert "creator_id" in tip_body["content"]["application/json"]["schema"]["properties"]


async def test_the_wallet_as_of_a_time(http, people) -> None:
    import datetime as dt

    before_tip = dt.datetime.now(dt.UTC).isoformat()
    await asyncio.sleep(0.05)
    response = await http.post(
        "/api/v1/tips",
        json={"creator_id": people.creator, "amount": 1_000, "currency": "NGN"},
        headers={**auth(people.fan, "fan"), **key()},
    )
    assert response.status_code == 201
    then = await http.get(
        "/api/v1/wallet", params={"as_of": before_tip}, headers=auth(people.fan, "fan")
    )
    now = await http.get("/api/v1/wallet", headers=auth(people.fan, "fan"))
    ngn = lambda body: next(b for b in body["balances"] if b["currency"] == "NGN")  # noqa: E731
    assert ngn(then.json())["balance"] == 100_000
    assert ngn(now.json())["balance"] == 99_000
    bad = await http.get(
        "/api/v1/wallet", params={"as_of": "yesterday"}, headers=auth(people.fan, "fan")
    )
    assert bad.status_code == 422
