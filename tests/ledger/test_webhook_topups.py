"""hub_webhook_topups, called as the webhook route calls it: a batch of verified payment
successes in one transaction on a plain asyncpg connection. Held to the SQLAlchemy path itself:
each event is first applied by ledger.settlement.apply_event in a transaction that is rolled
back, and the batch function must then leave the same state and say the same thing."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from ledger.accounts import Role
from ledger.checks import run_checks
from ledger.db import asyncpg_dsn
from ledger.group_commit import GroupCommit
from ledger.money import Money
from ledger.payments import Purpose, create_payment
from ledger.provider_events import EventKind, ProviderEvent
from ledger.settlement import apply_event
from ledger.webhook_topups import Applied, Delivery, apply_topups, batchable
from providers.signatures import sign_paystack
from tests.conftest import PAYSTACK_SECRET, Services, create_user
from tests.ledger.parties import RolledBack

pytestmark = pytest.mark.usefixtures("no_remote_followups")


async def payment(
    sessions,
    user: str,
    amount: int,
    purpose: Purpose = Purpose.TOPUP,
    provider: str = "paystack",
    currency: str = "NGN",
    **details: Any,
):
    async with sessions() as session, session.begin():
        return await create_payment(
            session,
            user_id=user,
            provider=provider,
            amount=Money(amount, currency),
            purpose=purpose,
            details=details,
        )


def success(reference: str | None, amount: int | None, currency: str | None = "NGN", **more):
    return ProviderEvent(
        provider=more.get("provider", "paystack"),
        event_id=more.get("event_id", uuid.uuid4().hex),
        type="charge.success",
        kind=EventKind.PAYMENT_SUCCEEDED,
        reference=reference,
        amount=amount,
        currency=currency,
        provider_ref=more.get("provider_ref", f"ch_{uuid.uuid4().hex[:8]}"),
    )


_STATE = """
SELECT
  (SELECT row_to_json(x) FROM (SELECT status, provider_ref, transfer_id IS NOT NULL AS paid
      FROM payments WHERE reference = :reference) x)::text AS payment,
  (SELECT row_to_json(x) FROM (SELECT outcome, detail, event_type, payload
      FROM webhook_events WHERE provider = :provider AND event_id = :event_id) x)::text AS inbox,
  (SELECT row_to_json(x) FROM (SELECT t.kind, t.currency, t.metadata, t.fee_bps,
      (SELECT json_agg(json_build_object('account', e.account_id, 'amount', e.amount,
                                         'after', e.balance_after) ORDER BY e.account_id)
       FROM entries e WHERE e.transfer_id = t.id) AS entries
      FROM transfers t WHERE t.reference = 'payment:' || :reference) x)::text AS transfer,
  (SELECT json_agg(json_build_object('id', a.id, 'balance', a.balance, 'version', a.version)
      ORDER BY a.id)
   FROM accounts a WHERE a.owner_id = :user OR a.kind = 'provider_clearing')::text AS accounts
"""


async def read_state(session, event: ProviderEvent, user: str) -> dict[str, Any]:
    """The rows `event` touches (payment, inbox, transfer and entries, the user's and the
    clearing accounts), as `session` sees them."""
    parameters = {
        "reference": event.reference,
        "provider": event.provider,
        "event_id": event.event_id,
        "user": user,
    }
    return dict((await session.execute(text(_STATE), parameters)).one()._mapping)


async def state(sessions, event: ProviderEvent, user: str) -> dict[str, Any]:
    async with sessions() as session:
        return await read_state(session, event, user)


async def by_sqlalchemy(sessions, event: ProviderEvent, user: str) -> tuple[Any, ...]:
    """What apply_event says and leaves for `event`, in a transaction then rolled back."""
    answer: tuple[Any, ...] = ()
    try:
        async with sessions() as session, session.begin():
            settled = await apply_event(session, event, "{}")
            answer = (
                settled.outcome,
                settled.detail,
                [(e.user_id, e.type, e.data) for e in settled.events],
                await read_state(session, event, user),
            )
            raise RolledBack
    except RolledBack:
        pass
    return answer


async def by_function(connection, events: list[ProviderEvent]) -> list[Applied]:
    async with connection.transaction():
        return await apply_topups(connection, [Delivery(e, "{}") for e in events])


def said(answer: Applied) -> tuple[Any, ...]:
    return (
        answer.outcome,
        answer.detail,
        [(e.user_id, e.type, e.data) for e in answer.events],
    )


async def test_a_topup_is_credited_as_the_sqlalchemy_path_credits_it(
    connection, sessions, uid
) -> None:
    fan = uid("fan")
    await create_user(sessions, fan, Role.FAN, fund=Money(1_000, "NGN"))
    # The provider's clearing account exists (made by a first top-up if it did not): both
    # paths would make it with the next id, and only one of them keeps it.
    first = await payment(sessions, fan, 500)
    [made] = await by_function(connection, [success(first.reference, 500)])
    assert made.outcome == "applied"
    paid = await payment(sessions, fan, 7_500)
    event = success(paid.reference, 7_500)

    outcome, detail, events, left = await by_sqlalchemy(sessions, event, fan)
    assert outcome == "applied" and events  # the reference run did credit
    [answer] = await by_function(connection, [event])
    assert said(answer) == (outcome, detail, events)
    assert await state(sessions, event, fan) == left
    # The payment's verification is queued with the money.
    assert (
        await connection.fetchval(
            "SELECT count(*) FROM outbox WHERE topic = 'payment.verify' AND ref = $1", paid.id
        )
        == 1
    )
    async with sessions() as session:
        assert await run_checks(session) == []


async def test_every_refusal_says_what_apply_event_says_and_moves_nothing(
    connection, sessions, uid
) -> None:
    fan = uid("fan")
    await create_user(sessions, fan, Role.FAN)
    done = await payment(sessions, fan, 1_000)
    first = success(done.reference, 1_000)
    [answer] = await by_function(connection, [first])
    assert answer.outcome == "applied"

    pending = await payment(sessions, fan, 2_000)
    elsewhere = await payment(sessions, fan, 3_000, provider="stripe")
    refusals = [
        success(pending.reference, 2_001),  # amount
        success(pending.reference, 2_000, "USD"),  # currency
        success(elsewhere.reference, 3_000),  # another provider's payment
        success(done.reference, 1_000),  # already succeeded: ignored
        success(pending.reference, None),  # a success must state its amount
    ]
    for event in refusals:
        outcome, detail, events, left = await by_sqlalchemy(sessions, event, fan)
        [answer] = await by_function(connection, [event])
        assert said(answer) == (outcome, detail, events), event
        assert answer.outcome in ("mismatch", "ignored") and not answer.events
        assert await state(sessions, event, fan) == left

    # A payer with no wallet in the payment's currency: every event for it is that mismatch
    # (the payment stays pending), in one batch as one after the other.
    euros = await payment(sessions, fan, 900, currency="EUR")
    twice = [success(euros.reference, 900, "EUR"), success(euros.reference, 900, "EUR")]
    expected = [(await by_sqlalchemy(sessions, event, fan))[:3] for event in twice]
    answers = await by_function(connection, twice)
    assert [said(a) for a in answers] == expected
    assert expected[0][0] == "mismatch" and "UnknownAccount" in expected[0][1]

    # A copy, later or in the same batch, is a duplicate; the payment is credited once.
    again = success(pending.reference, 2_000)
    answers = await by_function(connection, [again, again, first])
    assert [a.outcome for a in answers] == ["applied", "duplicate", "duplicate"]
    assert (
        await connection.fetchval(
            "SELECT count(*) FROM transfers WHERE reference = $1", f"payment:{pending.reference}"
        )
        == 1
    )


async def test_anything_but_a_topup_is_deferred_untouched(connection, sessions, uid) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, fan, Role.FAN)
    await create_user(sessions, creator, Role.CREATOR)
    card_tip = await payment(sessions, fan, 5_000, Purpose.TIP, creator_id=creator, fee_bps=1000)
    topup = await payment(sessions, fan, 4_000)
    unknown = success(f"pay_{uuid.uuid4().hex}", 100)
    answers = await by_function(
        connection, [success(card_tip.reference, 5_000), unknown, success(topup.reference, 4_000)]
    )
    assert [(a.outcome, a.deferred) for a in answers] == [
        ("deferred", True),
        ("deferred", True),
        ("applied", False),
    ]
    for event in (success(card_tip.reference, 5_000), unknown):
        assert (
            await connection.fetchval(
                "SELECT count(*) FROM webhook_events WHERE provider = $1 AND event_id = $2",
                event.provider,
                event.event_id,
            )
            == 0
        )
    assert (
        await connection.fetchval("SELECT status FROM payments WHERE id = $1", card_tip.id)
        == "pending"
    )


async def test_concurrent_batches_with_copies_credit_each_payment_once(
    services: Services, sessions, uid
) -> None:
    fan = uid("fan")
    await create_user(sessions, fan, Role.FAN)
    paid = [await payment(sessions, fan, 100 + n) for n in range(12)]
    events = [success(p.reference, p.amount.amount, event_id=f"evt-{p.id}") for p in paid]

    async def lane(order: list[ProviderEvent]) -> list[Applied]:
        connection = await asyncpg.connect(asyncpg_dsn(services.database_url))
        try:
            async with connection.transaction():
                return await apply_topups(connection, [Delivery(e, "{}") for e in order])
        finally:
            await connection.close()

    results = await asyncio.gather(
        lane(events), lane(events[::-1]), lane(events[3:] + events[:3]), lane(events[::2])
    )
    applied = [a for answers in results for a in answers if a.outcome == "applied"]
    assert len(applied) == len(paid)
    async with sessions() as session:
        total = await session.scalar(
            text(
                "SELECT sum(e.amount) FROM entries e JOIN accounts a ON a.id = e.account_id "
                "WHERE a.owner_id = :fan AND a.kind = 'wallet'"
            ),
            {"fan": fan},
        )
        assert total == sum(p.amount.amount for p in paid)
        assert await run_checks(session) == []


async def test_a_delivery_the_driver_refuses_fails_alone_in_its_batch(
    services: Services, sessions, uid
) -> None:
    """Group commit with the real function: a batch holding a value PostgreSQL's bigint cannot
    take is run again one delivery at a time, and only that one fails."""
    fan = uid("fan")
    await create_user(sessions, fan, Role.FAN)
    good = [await payment(sessions, fan, 300 + n) for n in range(3)]
    pool = await asyncpg.create_pool(asyncpg_dsn(services.database_url), min_size=1, max_size=2)
    commit = GroupCommit(pool, apply_topups, lanes=1)
    try:
        deliveries = [Delivery(success(p.reference, p.amount.amount), "{}") for p in good]
        bad = success(good[0].reference, 2**63)
        assert not batchable(bad)  # the route sends it to apply_event instead
        answers = await asyncio.gather(
            *(commit.submit(d) for d in [deliveries[0], Delivery(bad, "{}"), *deliveries[1:]]),
            return_exceptions=True,
        )
    finally:
        await pool.close()
    assert [getattr(a, "outcome", None) for a in answers] == [
        "applied",
        None,
        "applied",
        "applied",
    ]
    assert isinstance(answers[1], Exception)
    assert commit.batches == 3  # the batch of 4 rolled back; 3 good ones ran alone, 1 failed


async def test_the_route_applies_a_webhook_a_batch_cannot_hold_alone(http, sessions, uid) -> None:
    fan = uid("fan")
    await create_user(sessions, fan, Role.FAN)
    pending = await payment(sessions, fan, 4_200)
    fine = await payment(sessions, fan, 4_300)

    def delivery(reference: str, amount: int) -> Any:
        body = json.dumps(
            {
                "event": "charge.success",
                "data": {
                    "id": uuid.uuid4().int % 10**9,
                    "reference": reference,
                    "amount": amount,
                    "currency": "NGN",
                    "status": "success",
                },
            }
        ).encode()
        return http.post(
            "/webhooks/paystack",
            content=body,
            headers={"x-paystack-signature": sign_paystack(body, PAYSTACK_SECRET)},
        )

    huge, ok = await asyncio.gather(
        delivery(pending.reference, 2**63), delivery(fine.reference, 4_300)
    )
    assert (huge.status_code, huge.json()["outcome"]) == (200, "mismatch")
    assert (ok.status_code, ok.json()["outcome"]) == (200, "applied")
