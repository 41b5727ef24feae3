"""payments.verify: a succeeded payment is checked against the provider's API by a worker."""

from __future__ import annotations

import json

from arq.connections import ArqRedis
from sqlalchemy import select

from hub.runtime import build_provider_clients
from jobs.outbox import drain
from jobs.verification import NAME, verify
from ledger.schema import outbox, payments
from providers.signatures import sign_paystack
from tests.conftest import PAYSTACK_SECRET, make_settings
from tests.money import start_topup, topup


async def verification_of(sessions, payment_id: int) -> str | None:
    async with sessions() as session:
        return await session.scalar(
            select(payments.c.verification).where(payments.c.id == payment_id)
        )


async def test_a_paid_topup_is_confirmed_and_a_forged_one_is_flagged(
    http, sandbox, sessions, services, stack, uid
) -> None:
    paid = await topup(http, sandbox, uid("fan"), 3_000, "paystack")
    # A success the provider never saw (signed with our key, as a leaked key would allow).
    unpaid = await start_topup(http, uid("fan"), 4_000, "paystack")
    body = json.dumps(
        {
            "event": "charge.success",
            "data": {
                "id": 424242,
                "reference": unpaid["reference"],
                "amount": 4_000,
                "currency": "NGN",
                "status": "success",
            },
        }
    ).encode()
    answer = await http.post(
        "/webhooks/paystack",
        content=body,
        headers={"x-paystack-signature": sign_paystack(body, PAYSTACK_SECRET)},
    )
    assert answer.json()["outcome"] == "applied"

    # The jobs were queued (deferred a few seconds); run them here as the worker would.
    providers, client = build_provider_clients(make_settings(services, stack.sandbox.url))
    ctx = {"sessions": sessions, "providers": providers}
    try:
        for payment in (paid, unpaid):
            await verify(ctx, payment["id"])
            await verify(ctx, payment["id"])  # twice: the first answer stands
    finally:
        await client.aclose()
    assert await verification_of(sessions, paid["id"]) == "confirmed"
    assert (await verification_of(sessions, unpaid["id"])).startswith("NOT CONFIRMED")


async def test_a_webhook_success_queues_its_verification_through_the_outbox(
    http, sandbox, sessions, services, uid
) -> None:
    paid = await topup(http, sandbox, uid("fan"), 2_500, "paystack")
    async with sessions() as session:
        topics = (
            await session.scalars(select(outbox.c.topic).where(outbox.c.ref == paid["id"]))
        ).all()
    assert "payment.verify" in topics  # committed with the webhook's credit
    job = f"arq:job:{NAME}:{paid['id']}"
    queue = ArqRedis.from_url(services.redis_url)
    try:
        assert not await queue.exists(job)  # the hub enqueued nothing itself
        await drain({"sessions": sessions, "redis": queue})
        assert await queue.exists(job)  # the worker's drain did, deferred as before
    finally:
        await queue.aclose()
    async with sessions() as session:
        left = await session.scalars(
            select(outbox.c.topic).where(
                outbox.c.ref == paid["id"], outbox.c.topic == "payment.verify"
            )
        )
        assert left.all() == []
