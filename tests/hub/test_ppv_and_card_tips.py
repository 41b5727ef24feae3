"""Pay-per-view from a wallet and by card, and tips by card: the server's price, one charge."""

from __future__ import annotations

import asyncio

from ledger.accounts import Role
from tests.conftest import auth, create_user, token
from tests.money import balance, deliver, key, topup


async def new_content(http, creator: str, price: int = 2_500, title: str = "Backstage") -> dict:
    response = await http.post(
        "/api/v1/content",
        json={"title": title, "price": price, "currency": "NGN"},
        headers=auth(creator, "creator"),
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_only_creators_register_content(http, uid) -> None:
    response = await http.post(
        "/api/v1/content",
        json={"title": "x", "price": 100, "currency": "NGN"},
        headers=auth(uid("fan"), "fan"),
    )
    assert response.status_code == 403


async def test_buying_from_the_wallet_grants_access_once(
    http, people, sessions, sockets, live
) -> None:
    item = await new_content(http, people.creator, 2_500)
    creator_socket = sockets()
    await creator_socket.connect(live.url, {"token": token(people.creator, "creator")})
    before = await http.get(f"/api/v1/content/{item['id']}", headers=auth(people.fan, "fan"))
    assert before.json()["has_access"] is False

    # The client cannot set the price: an amount in the body is refused, not used.
    sneaky = await http.post(
        f"/api/v1/content/{item['id']}/purchase",
        json={"amount": 1},
        headers={**auth(people.fan, "fan"), **key()},
    )
    assert sneaky.status_code == 422
    bought = await http.post(
        f"/api/v1/content/{item['id']}/purchase", headers={**auth(people.fan, "fan"), **key()}
    )
    assert bought.status_code == 201, bought.text
    assert bought.json()["amount"] == {"amount": 2_500, "currency": "NGN"}
    again = await http.post(
        f"/api/v1/content/{item['id']}/purchase", headers={**auth(people.fan, "fan"), **key()}
    )
    assert again.status_code == 409
    assert again.json()["error"]["type"] == "already_purchased"

    assert await balance(http, people.fan) == 100_000 - 2_500
    after = await http.get(f"/api/v1/content/{item['id']}", headers=auth(people.fan, "fan"))
    assert after.json()["has_access"] is True
    [sold] = await creator_socket.wait_for("ppv.sold")
    assert sold["data"]["net"] == 2_500 - 250


async def test_concurrent_purchases_with_different_keys_charge_once(http, people) -> None:
    item = await new_content(http, people.creator, 4_000)
    responses = await asyncio.gather(
        *(
            http.post(
                f"/api/v1/content/{item['id']}/purchase",
                headers={**auth(people.fan, "fan"), **key()},
            )
            for _ in range(10)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] + [409] * 9
    assert await balance(http, people.fan) == 100_000 - 4_000


async def test_buying_by_card_unlocks_after_the_webhook(http, sandbox, uid, sessions) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    item = await new_content(http, creator, 3_000)
    started = await http.post(
        f"/api/v1/content/{item['id']}/purchase",
        json={"source": "card", "provider": "stripe"},
        headers={**auth(fan, "fan"), **key()},
    )
    assert started.status_code == 202, started.text
    payment = started.json()["payment"]
    assert payment["amount"] == {"amount": 3_000, "currency": "NGN"}  # the server's price
    await deliver(sandbox, f"checkout/{payment['reference']}", outcome="succeeded")

    shown = await http.get(f"/api/v1/content/{item['id']}", headers=auth(fan, "fan"))
    assert shown.json()["has_access"] is True
    assert await balance(http, fan) == 0  # paid by card: the wallet nets to zero
    assert await balance(http, creator, "creator", "earnings") == 3_000 - 300
    again = await http.post(
        f"/api/v1/content/{item['id']}/purchase",
        json={"source": "card", "provider": "stripe"},
        headers={**auth(fan, "fan"), **key()},
    )
    assert again.status_code == 409


async def test_a_card_payment_for_content_bought_meanwhile_stays_in_the_wallet(
    http, sandbox, people
) -> None:
    item = await new_content(http, people.creator, 5_000)
    started = await http.post(
        f"/api/v1/content/{item['id']}/purchase",
        json={"source": "card", "provider": "paystack"},
        headers={**auth(people.fan, "fan"), **key()},
    )
    payment = started.json()["payment"]
    bought = await http.post(
        f"/api/v1/content/{item['id']}/purchase", headers={**auth(people.fan, "fan"), **key()}
    )
    assert bought.status_code == 201
    await deliver(sandbox, f"checkout/{payment['reference']}", outcome="succeeded")
    # Charged once for the content; the card payment is credited to the wallet, not lost.
    assert await balance(http, people.fan) == 100_000 - 5_000 + 5_000
    assert await balance(http, people.creator, "creator", "earnings") == 5_000 - 500


async def test_a_card_tip_reaches_the_creator_after_the_webhook(
    http, sandbox, uid, sessions, sockets, live
) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    creator_socket = sockets()
    await creator_socket.connect(live.url, {"token": token(creator, "creator")})
    started = await http.post(
        "/api/v1/tips",
        json={
            "creator_id": creator,
            "amount": 8_000,
            "currency": "NGN",
            "message": "by card",
            "source": "card",
            "provider": "sandbox",
        },
        headers={**auth(fan, "fan"), **key()},
    )
    assert started.status_code == 202, started.text
    assert started.json()["checkout_url"]
    assert not creator_socket.of_type("tip.received")
    await deliver(sandbox, f"checkout/{started.json()['payment']['reference']}")
    [alert] = await creator_socket.wait_for("tip.received")
    assert alert["data"]["amount"] == 8_000 and alert["data"]["message"] == "by card"
    assert await balance(http, creator, "creator", "earnings") == 8_000 - 800
    assert await balance(http, fan) == 0


async def test_a_card_tip_to_an_unknown_creator_is_404_before_any_payment(http, uid) -> None:
    response = await http.post(
        "/api/v1/tips",
        json={
            "creator_id": "ghost",
            "amount": 100,
            "currency": "NGN",
            "source": "card",
            "provider": "paystack",
        },
        headers={**auth(uid("fan"), "fan"), **key()},
    )
    assert response.status_code == 404


async def test_topped_up_money_can_be_tipped(http, sandbox, uid, sessions) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await topup(http, sandbox, fan, 20_000, "stripe")
    response = await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": 20_000, "currency": "NGN"},
        headers={**auth(fan, "fan"), **key()},
    )
    assert response.status_code == 201
    assert await balance(http, fan) == 0
