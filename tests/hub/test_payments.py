"""Top-ups through each provider (the sandbox standing in by base URL), and the webhook
guarantees: exactly once under duplicates, out of order, mismatches, bad signatures."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from sqlalchemy import func, select

from ledger.schema import transfers, webhook_events
from providers.signatures import sign_paystack, sign_standard, sign_stripe
from tests.conftest import (
    PAYSTACK_SECRET,
    SANDBOX_WEBHOOK_SECRET,
    STRIPE_WEBHOOK_SECRET,
    auth,
    token,
)
from tests.money import balance, clearing_balance, deliver, inbox, key, start_topup, topup

PROVIDERS = ["paystack", "stripe", "sandbox"]


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_topup_credits_the_wallet_once_the_provider_confirms(
    http, sandbox, uid, provider: str, sessions, sockets, live
) -> None:
    fan = uid("fan")
    probe = sockets()
    await probe.connect(live.url, {"token": token(fan, "fan")})
    payment = await start_topup(http, fan, 25_000, provider)
    assert payment["status"] == "pending"
    assert payment["reference"].startswith("pay_")
    page = await sandbox.get(payment["checkout_url"].replace(str(sandbox.base_url), ""))
    assert page.status_code == 200 and "Pay" in page.text
    assert await balance(http, fan) == 0  # nothing before the provider says so

    clearing_before = await clearing_balance(sessions, provider)
    result = await deliver(sandbox, f"checkout/{payment['reference']}", outcome="succeeded")
    assert result["statuses"] == [200]

    assert await balance(http, fan) == 25_000
    assert await clearing_balance(sessions, provider) - clearing_before == -25_000
    shown = await http.get(f"/api/v1/payments/{payment['id']}", headers=auth(fan, "fan"))
    assert shown.json()["status"] == "succeeded"
    [succeeded] = await probe.wait_for("payment.succeeded")
    assert succeeded["data"]["reference"] == payment["reference"]
    updates = await probe.wait_for("balance.updated")
    assert updates[-1]["data"]["balance"] == 25_000


async def test_the_checkout_page_pay_button_sends_the_webhook(http, sandbox, uid) -> None:
    fan = uid("fan")
    payment = await start_topup(http, fan, 7_000, "paystack")
    path = payment["checkout_url"].replace(str(sandbox.base_url), "")
    response = await sandbox.post(f"{path}/pay")
    assert response.status_code == 200
    assert await balance(http, fan) == 7_000


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_twenty_concurrent_copies_post_once(http, sandbox, uid, sessions, provider) -> None:
    fan = uid("fan")
    payment = await start_topup(http, fan, 10_000, provider)
    result = await deliver(
        sandbox,
        f"checkout/{payment['reference']}",
        outcome="succeeded",
        copies=20,
        concurrent=True,
    )
    assert result["statuses"] == [200] * 20
    assert len(set(result["event_ids"])) == 1
    assert await balance(http, fan) == 10_000
    async with sessions() as session:
        postings = await session.scalar(
            select(func.count()).where(transfers.c.reference == f"payment:{payment['reference']}")
        )
    assert postings == 1
    assert len(await inbox(sessions, provider, result["event_ids"][0])) == 1


async def test_a_duplicate_days_later_changes_nothing(http, sandbox, uid) -> None:
    fan = uid("fan")
    payment = await topup(http, sandbox, fan, 5_000)
    again = await deliver(sandbox, f"checkout/{payment['reference']}", outcome="succeeded")
    assert again["statuses"] == [200]
    assert await balance(http, fan) == 5_000


async def test_out_of_order_failure_then_success_credits(http, sandbox, uid) -> None:
    fan = uid("fan")
    payment = await start_topup(http, fan, 3_000, "stripe")
    result = await deliver(
        sandbox, f"checkout/{payment['reference']}", events=["failed", "succeeded"]
    )
    assert result["statuses"] == [200, 200]
    assert await balance(http, fan) == 3_000
    shown = await http.get(f"/api/v1/payments/{payment['id']}", headers=auth(fan, "fan"))
    assert shown.json()["status"] == "succeeded"


async def test_a_failure_after_success_is_ignored(http, sandbox, uid) -> None:
    fan = uid("fan")
    payment = await start_topup(http, fan, 3_000, "sandbox")
    await deliver(sandbox, f"checkout/{payment['reference']}", events=["succeeded", "failed"])
    assert await balance(http, fan) == 3_000


async def test_a_declined_payment_is_failed_and_credits_nothing(http, sandbox, uid) -> None:
    fan = uid("fan")
    payment = await start_topup(http, fan, 3_000, "paystack")
    await deliver(sandbox, f"checkout/{payment['reference']}", outcome="failed")
    shown = await http.get(f"/api/v1/payments/{payment['id']}", headers=auth(fan, "fan"))
    assert shown.json()["status"] == "failed"
    assert await balance(http, fan) == 0


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_an_amount_mismatch_is_recorded_and_credits_nothing(
    http, sandbox, uid, sessions, provider
) -> None:
    fan = uid("fan")
    payment = await start_topup(http, fan, 10_000, provider)
    result = await deliver(
        sandbox, f"checkout/{payment['reference']}", outcome="succeeded", amount=100_000
    )
    assert result["statuses"] == [200]
    assert await balance(http, fan) == 0
    [row] = await inbox(sessions, provider, result["event_ids"][0])
    assert row.outcome == "mismatch"
    assert "amount" in row.detail


async def test_other_peoples_payments_are_not_found(http, uid) -> None:
    fan, other = uid("fan"), uid("fan")
    payment = await start_topup(http, fan, 1_000)
    response = await http.get(f"/api/v1/payments/{payment['id']}", headers=auth(other, "fan"))
    assert response.status_code == 404


async def test_unknown_provider_and_bad_input(http, uid) -> None:
    fan = uid("fan")
    for body, param in [
        ({"amount": 1_000, "currency": "NGN", "provider": "paypal"}, "provider"),
        ({"amount": 0, "currency": "NGN", "provider": "paystack"}, "amount"),
        ({"amount": 1_000, "currency": "EUR", "provider": "paystack"}, "currency"),
    ]:
        response = await http.post(
            "/api/v1/payments", json=body, headers={**auth(fan, "fan"), **key()}
        )
        assert response.status_code == 422, response.text
        assert response.json()["error"]["param"] == param


# --- Webhook signatures through the route itself -------------------------------------------------


def paystack_body(reference: str, amount: int = 1_000) -> bytes:
    return json.dumps(
        {
            "event": "charge.success",
            "data": {"id": 99, "reference": reference, "amount": amount, "currency": "NGN"},
        }
    ).encode()


async def test_a_bad_signature_is_401_and_stores_nothing(http, sessions) -> None:
    body = paystack_body("pay_nothing")
    signature = sign_paystack(body, PAYSTACK_SECRET)
    flipped = bytearray(body)
    flipped[10] ^= 1
    async with sessions() as session:
        before = await session.scalar(select(func.count()).select_from(webhook_events))
    for payload, headers in [
        (bytes(flipped), {"x-paystack-signature": signature}),
        (body, {"x-paystack-signature": signature.upper()}),
        (body, {}),
        (body, {"x-paystack-signature": sign_paystack(body, "sk_wrong")}),
    ]:
        response = await http.post("/webhooks/paystack", content=payload, headers=headers)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["type"] == "invalid_signature"
    stale = int(time.time()) - 301
    response = await http.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign_stripe(body, STRIPE_WEBHOOK_SECRET, stale)},
    )
    assert response.status_code == 401
    async with sessions() as session:
        after = await session.scalar(select(func.count()).select_from(webhook_events))
    assert after == before


async def test_signed_but_malformed_json_is_400_and_stored_as_rejected(http, sessions) -> None:
    body = b'{"event": "charge.success", "data": '
    response = await http.post(
        "/webhooks/paystack",
        content=body,
        headers={"x-paystack-signature": sign_paystack(body, PAYSTACK_SECRET)},
    )
    assert response.status_code == 400
    async with sessions() as session:
        outcome = await session.scalar(
            select(webhook_events.c.outcome).where(webhook_events.c.payload == body.decode())
        )
    assert outcome == "rejected"


async def test_an_unknown_event_type_is_stored_and_acknowledged(http, sessions, uid) -> None:
    msg_id = uid("msg")
    body = json.dumps({"type": "customer.created", "data": {"id": "c1"}}).encode()
    now = int(time.time())
    response = await http.post(
        "/webhooks/sandbox",
        content=body,
        headers={
            "webhook-id": msg_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign_standard(msg_id, now, body, SANDBOX_WEBHOOK_SECRET),
        },
    )
    assert response.status_code == 200
    assert response.json()["outcome"] == "unknown"
    [row] = await inbox(sessions, "sandbox", msg_id)
    assert row.outcome == "unknown"


async def test_an_unknown_sender_is_404(http) -> None:
    response = await http.post("/webhooks/nobody", content=b"{}")
    assert response.status_code == 404


async def test_concurrent_topups_and_duplicates_conserve_money(http, sandbox, uid, sessions):
    fans = [uid("fan") for _ in range(5)]
    payments = [await start_topup(http, fan, 1_000 * (i + 1)) for i, fan in enumerate(fans)]
    await asyncio.gather(
        *(
            deliver(
                sandbox,
                f"checkout/{p['reference']}",
                outcome="succeeded",
                copies=4,
                concurrent=True,
            )
            for p in payments
        )
    )
    for i, fan in enumerate(fans):
        assert await balance(http, fan) == 1_000 * (i + 1)
