"""Payouts (held, sent by a job, settled by webhook) and admin refunds (reversals, partial,
never above the payment, idempotent)."""

from __future__ import annotations

import asyncio

from ledger.accounts import Role
from tests.conftest import auth, create_user, run_jobs
from tests.money import balance, deliver, key, topup, wallet


async def earning_creator(http, sandbox, uid, sessions, amount: int) -> str:
    """A creator with `amount` of earnings, tipped by a fan who topped up (10 % fee)."""
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    gross = amount * 10 // 9
    assert gross - gross // 10 == amount
    await topup(http, sandbox, fan, gross)
    tip = await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": gross, "currency": "NGN"},
        headers={**auth(fan, "fan"), **key()},
    )
    assert tip.status_code == 201
    return creator


async def payout(http, creator: str, amount: int):
    return await http.post(
        "/api/v1/payouts",
        json={"amount": amount, "currency": "NGN"},
        headers={**auth(creator, "creator"), **key()},
    )


async def test_a_payout_is_held_sent_and_posted(
    http, sandbox, uid, sessions, services, stack
) -> None:
    creator = await earning_creator(http, sandbox, uid, sessions, 9_000)
    too_much = await payout(http, creator, 9_001)
    assert too_much.status_code == 402

    created = await payout(http, creator, 6_000)
    assert created.status_code == 201, created.text
    earnings = (await wallet(http, creator, "creator"))[("earnings", "NGN")]
    assert (earnings["balance"], earnings["held"], earnings["available"]) == (9_000, 6_000, 3_000)
    # The held money cannot be paid out twice.
    assert (await payout(http, creator, 3_001)).status_code == 402

    await run_jobs(services, stack)
    reference = created.json()["reference"]
    result = await deliver(sandbox, f"transfers/{reference}", outcome="succeeded", copies=3)
    assert result["statuses"] == [200, 200, 200]

    earnings = (await wallet(http, creator, "creator"))[("earnings", "NGN")]
    assert (earnings["balance"], earnings["held"], earnings["available"]) == (3_000, 0, 3_000)
    shown = await http.get(
        f"/api/v1/payouts/{created.json()['id']}", headers=auth(creator, "creator")
    )
    assert shown.json()["status"] == "paid"


async def test_a_failed_payout_gives_the_money_back(
    http, sandbox, uid, sessions, services, stack
) -> None:
    creator = await earning_creator(http, sandbox, uid, sessions, 9_000)
    created = await payout(http, creator, 9_000)
    await run_jobs(services, stack)
    await deliver(sandbox, f"transfers/{created.json()['reference']}", outcome="failed")
    earnings = (await wallet(http, creator, "creator"))[("earnings", "NGN")]
    assert (earnings["balance"], earnings["available"]) == (9_000, 9_000)
    shown = await http.get(
        f"/api/v1/payouts/{created.json()['id']}", headers=auth(creator, "creator")
    )
    assert shown.json()["status"] == "failed"


async def test_a_reversed_payout_after_success_returns_the_money(
    http, sandbox, uid, sessions, services, stack
) -> None:
    creator = await earning_creator(http, sandbox, uid, sessions, 4_500)
    created = await payout(http, creator, 4_500)
    await run_jobs(services, stack)
    reference = created.json()["reference"]
    await deliver(sandbox, f"transfers/{reference}", events=["succeeded", "reversed"])
    assert await balance(http, creator, "creator", "earnings") == 4_500


async def test_only_creators_request_payouts(http, uid) -> None:
    nothing_earned = await payout(http, uid("creator"), 100)
    assert nothing_earned.status_code == 402
    fan_try = await http.post(
        "/api/v1/payouts",
        json={"amount": 100, "currency": "NGN"},
        headers={**auth(uid("fan"), "fan"), **key()},
    )
    assert fan_try.status_code == 403


async def test_concurrent_payouts_never_exceed_the_available_earnings(
    http, sandbox, uid, sessions
) -> None:
    creator = await earning_creator(http, sandbox, uid, sessions, 9_000)
    responses = await asyncio.gather(*(payout(http, creator, 2_000) for _ in range(10)))
    assert sorted(r.status_code for r in responses) == [201] * 4 + [402] * 6
    earnings = (await wallet(http, creator, "creator"))[("earnings", "NGN")]
    assert (earnings["held"], earnings["available"]) == (8_000, 1_000)


# --- Refunds ----------------------------------------------------------------------------------


async def refund(http, admin: str, payment_id: int, amount: int | None = None, idem=None):
    body = {"payment_id": payment_id} | ({"amount": amount} if amount is not None else {})
    return await http.post(
        "/api/v1/refunds", json=body, headers={**auth(admin, "admin"), **(idem or key())}
    )


async def test_partial_refunds_never_exceed_the_payment(http, sandbox, uid, sessions) -> None:
    fan, admin = uid("fan"), uid("admin")
    payment = await topup(http, sandbox, fan, 10_000)
    first = await refund(http, admin, payment["id"], 4_000)
    assert first.status_code == 201, first.text
    too_much = await refund(http, admin, payment["id"], 6_001)
    assert too_much.status_code == 422
    assert too_much.json()["error"]["type"] == "refund_exceeds_payment"
    rest = await refund(http, admin, payment["id"])
    assert rest.status_code == 201
    assert rest.json()["amount"]["amount"] == 6_000
    nothing_left = await refund(http, admin, payment["id"], 1)
    assert nothing_left.status_code == 409
    assert await balance(http, fan) == 0


async def test_a_repeated_refund_moves_no_money(http, sandbox, uid) -> None:
    fan, admin = uid("fan"), uid("admin")
    payment = await topup(http, sandbox, fan, 10_000)
    idem = key()
    first = await refund(http, admin, payment["id"], 2_500, idem)
    second = await refund(http, admin, payment["id"], 2_500, idem)
    assert first.status_code == second.status_code == 201
    assert second.headers["idempotent-replayed"] == "true"
    assert await balance(http, fan) == 7_500


async def test_refunds_are_for_admins_only(http, sandbox, uid) -> None:
    fan = uid("fan")
    payment = await topup(http, sandbox, fan, 1_000)
    response = await http.post(
        "/api/v1/refunds",
        json={"payment_id": payment["id"]},
        headers={**auth(fan, "fan"), **key()},
    )
    assert response.status_code == 403
    assert await balance(http, fan) == 1_000


async def test_a_refund_cannot_take_spent_wallet_money(http, sandbox, uid, sessions) -> None:
    fan, creator, admin = uid("fan"), uid("creator"), uid("admin")
    await create_user(sessions, creator, Role.CREATOR)
    payment = await topup(http, sandbox, fan, 5_000)
    await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": 5_000, "currency": "NGN"},
        headers={**auth(fan, "fan"), **key()},
    )
    response = await refund(http, admin, payment["id"])
    assert response.status_code == 402
    assert await balance(http, fan) == 0


async def test_refunding_a_card_tip_can_take_earnings_below_zero(
    http, sandbox, uid, sessions, services, stack
) -> None:
    fan, creator, admin = uid("fan"), uid("creator"), uid("admin")
    await create_user(sessions, creator, Role.CREATOR)
    started = await http.post(
        "/api/v1/tips",
        json={
            "creator_id": creator,
            "amount": 10_000,
            "currency": "NGN",
            "source": "card",
            "provider": "paystack",
        },
        headers={**auth(fan, "fan"), **key()},
    )
    payment = started.json()["payment"]
    await deliver(sandbox, f"checkout/{payment['reference']}")
    # The creator pays out everything, then the fan's card payment is refunded.
    created = await payout(http, creator, 9_000)
    await run_jobs(services, stack)
    await deliver(sandbox, f"transfers/{created.json()['reference']}")
    response = await refund(http, admin, payment["id"], 10_000)
    assert response.status_code == 201, response.text
    assert await balance(http, creator, "creator", "earnings") == -9_000
    statement = await http.get(
        "/api/v1/transactions?account=earnings", headers=auth(creator, "creator")
    )
    kinds = [entry["kind"] for entry in statement.json()["data"]]
    assert kinds[0] == "refund"
    # The refund's job asks the provider; its confirmation is recorded, moving no more money.
    await run_jobs(services, stack)
    refund_ref = response.json()["reference"]
    confirmed = await deliver(sandbox, f"refunds/{refund_ref}")
    assert confirmed["statuses"] == [200]
    assert await balance(http, creator, "creator", "earnings") == -9_000


async def test_a_stripe_refund_reaches_stripe(http, sandbox, uid, services, stack) -> None:
    """The refund names the PaymentIntent from the success webhook, not the Checkout Session."""
    fan, admin = uid("fan"), uid("admin")
    payment = await topup(http, sandbox, fan, 10_000, "stripe")
    created = await refund(http, admin, payment["id"], 2_000)
    assert created.status_code == 201
    await run_jobs(services, stack)
    confirmed = await deliver(sandbox, f"refunds/{created.json()['reference']}")
    assert confirmed["statuses"] == [200]
