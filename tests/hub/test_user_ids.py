"""A user id is unique within its app. Two apps each have a fan and a creator of the same ids;
every flow of one app is run, and everything it shows the platform (HTTP bodies, socket
events, webhook bodies, the events API, the delivery log) names its users by the platform's
own ids, never by the id Hub stores them under, and nothing reaches the other app's users."""

from __future__ import annotations

import json
import uuid
from typing import Any

from ledger.accounts import Role
from ledger.apps import Scope, create_key
from ledger.db import unit_of_work
from ledger.funding import fund_wallet_for_development
from ledger.ids import SEPARATOR, stored_id
from ledger.money import Money
from tests.conftest import auth, create_user
from tests.hub.test_app_settings import app_token, bearer, platform
from tests.jobs.test_webhooks import endpoint, receiver, running_worker, verified
from tests.money import deliver


async def test_one_id_in_two_apps_is_shown_as_the_platform_knows_it_everywhere(
    http, live, sandbox, sessions, services, sockets, uid
) -> None:
    fan, creator = uid("fan"), uid("creator")
    # the default app has a fan and a creator of these ids, with money
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(50_000, "NGN"))
    app_id, issuer, _ = await platform(sessions)
    async with unit_of_work(sessions) as uow:
        _, secret = await create_key(uow.session, app_id, (Scope.ADMIN, Scope.READ, Scope.PUBLISH))
    admin = bearer(secret)
    as_fan = bearer(app_token(issuer, fan, "fan"))
    as_creator = bearer(app_token(issuer, creator, "creator"))
    shown: list[str] = []  # every text the app's platform and users were shown

    async def call(method: str, path: str, headers: dict[str, str], **how: Any) -> Any:
        answer = await http.request(method, path, headers=headers, **how)
        assert answer.status_code < 300, answer.text
        shown.append(answer.text)
        return answer.json()

    made = await call("PUT", f"/api/v1/users/{creator}", admin, json={"role": "creator"})
    assert made["id"] == creator
    assert (await call("GET", "/api/v1/me", as_fan))["id"] == fan
    async with unit_of_work(sessions) as uow:
        await fund_wallet_for_development(
            uow.session, stored_id(app_id, fan), Money(20_000, "NGN"), reference=uid("funding")
        )

    creator_socket, viewer = sockets(), sockets()
    await creator_socket.connect(live.url, {"token": as_creator["Authorization"][7:]})
    await viewer.connect(live.url, {"token": as_fan["Authorization"][7:], "viewing": creator})
    await creator_socket.wait_for("recovered")
    await viewer.wait_for("public.recovered")
    async with receiver() as hook, endpoint(http, admin, hook.url) as hook_endpoint:
        tip = await call(
            "POST",
            "/api/v1/tips",
            {**as_fan, "Idempotency-Key": uuid.uuid4().hex},
            json={"creator_id": creator, "amount": 1_000, "currency": "NGN", "message": "hi"},
        )
        assert (tip["fan_id"], tip["creator_id"]) == (fan, creator)
        assert {e["owner_id"] for e in tip["entries"]} >= {fan, creator}
        card = await call(
            "POST",
            "/api/v1/tips",
            {**as_fan, "Idempotency-Key": uuid.uuid4().hex},
            json={
                "creator_id": creator,
                "amount": 700,
                "currency": "NGN",
                "source": "card",
                "provider": "paystack",
            },
        )
        assert card["payment"]["details"]["creator_id"] == creator
        await deliver(sandbox, f"checkout/{card['payment']['reference']}")
        content = await call(
            "POST",
            "/api/v1/content",
            as_creator,
            json={"title": "Behind the scenes", "price": 500, "currency": "NGN"},
        )
        assert content["creator_id"] == creator
        bought = await call(
            "POST",
            f"/api/v1/content/{content['id']}/purchase",
            {**as_fan, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert bought["buyer_id"] == fan
        await call(
            "POST",
            "/api/v1/notifications",
            {**admin, "Idempotency-Key": uuid.uuid4().hex},
            json={"user_ids": [fan, creator], "type": "call.started", "data": {"room": "r1"}},
        )
        missing = await http.post(
            "/api/v1/tips",
            json={"creator_id": "nobody", "amount": 100, "currency": "NGN"},
            headers={**as_fan, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert missing.json()["error"]["message"] == "no creator nobody"

        # the wallet tip and the card tip
        received = await creator_socket.wait_for("tip.received", count=2, timeout=15)
        assert {(t["data"]["fan_id"], t["data"]["creator_id"]) for t in received} == {
            (fan, creator)
        }
        [sold] = await creator_socket.wait_for("ppv.sold")
        assert sold["data"]["buyer_id"] == fan
        [ticker, *_] = await viewer.wait_for("public.tip")
        assert ticker["channel"] == creator
        await creator_socket.wait_for("app.call.started")
        shown.extend(json.dumps(data) for _, data in creator_socket.events + viewer.events)

        page = await call("GET", "/api/v1/events", admin, params={"user_id": creator})
        assert page["user_id"] == creator
        types = [e["type"] for e in page["data"]]
        assert {"tip.received", "ppv.sold", "app.call.started"} <= set(types)
        for path, headers in (
            ("/api/v1/tips", as_creator),
            ("/api/v1/wallet", as_fan),
            (f"/api/v1/creators/{creator}", as_fan),
            (f"/api/v1/creators/{creator}/content", as_fan),
            (f"/api/v1/presence?user_id={fan}&user_id={creator}", admin),
        ):
            await call("GET", path, headers)  # what each shows is checked below

        async with running_worker(services):
            seen = await hook.wait_for(
                lambda events: {"tip.received", "ppv.sold"} <= {e["type"] for e in events}
            )
        for headers, body in hook.received:
            verified(hook_endpoint["secret"], headers, body)
            shown.append(body.decode())
        assert {e["user_id"] for e in seen} == {fan, creator}
        tipped = [e for e in seen if e["type"] == "tip.received"]
        assert {(e["data"]["fan_id"], e["data"]["creator_id"]) for e in tipped} == {(fan, creator)}
        log = await call(
            "GET", f"/api/v1/webhook-endpoints/{hook_endpoint['id']}/deliveries", admin
        )
        one = await call("GET", f"/api/v1/webhook-deliveries/{log['data'][0]['id']}", admin)
        assert json.loads(one["payload"])["user_id"] in {fan, creator}

    # nothing anywhere named a user by their stored id
    for text in shown:
        assert SEPARATOR not in text and "\\u001f" not in text, text
    # and the default app's users of the same ids saw none of it
    theirs = await http.get("/api/v1/tips", headers=auth(creator, "creator"))
    assert theirs.json()["data"] == []
    wallet = await http.get("/api/v1/wallet", headers=auth(fan, "fan"))
    assert {b["currency"]: b["balance"] for b in wallet.json()["balances"]}["NGN"] == 50_000
