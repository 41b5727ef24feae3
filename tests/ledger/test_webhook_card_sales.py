"""hub_webhook_card_sales, called as the webhook route calls it: a batch of payment successes
for card tips and card purchases in one transaction on a plain asyncpg connection. Held to the
SQLAlchemy path itself: the same events are first applied one after another by
ledger.settlement.apply_event in a transaction that is rolled back, and the batch function must
then say the same, write the same events and leave the same rows."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text

from ledger.accounts import Role
from ledger.checks import run_checks
from ledger.content import create_content
from ledger.db import asyncpg_dsn
from ledger.money import Money
from ledger.payments import Purpose, create_payment
from ledger.provider_events import EventKind, ProviderEvent
from ledger.settlement import apply_event
from ledger.webhook_topups import Applied, Delivery, apply_card_sales, apply_topups
from tests.conftest import create_user
from tests.ledger.parties import RolledBack

pytestmark = pytest.mark.usefixtures("no_remote_followups")


async def payment(sessions, user: str, amount: int, purpose: Purpose, **details: Any):
    async with sessions() as session, session.begin():
        return await create_payment(
            session,
            user_id=user,
            provider="paystack",
            amount=Money(amount, "NGN"),
            purpose=purpose,
            details=details,
        )


async def card_tip(sessions, fan: str, creator: str, amount: int, message: str | None = None):
    return await payment(
        sessions, fan, amount, Purpose.TIP, creator_id=creator, message=message, fee_bps=1000
    )


async def card_purchase(sessions, buyer: str, content_id: int, price: int):
    return await payment(
        sessions, buyer, price, Purpose.PURCHASE, content_id=content_id, fee_bps=1000
    )


async def item(sessions, creator: str, price: int) -> int:
    async with sessions() as session, session.begin():
        return (await create_content(session, creator, "a song é", Money(price, "NGN"))).id


def success(reference: str, amount: int | None, currency: str = "NGN", **more: Any):
    return ProviderEvent(
        provider="paystack",
        event_id=more.get("event_id", uuid.uuid4().hex),
        type="charge.success",
        kind=EventKind.PAYMENT_SUCCEEDED,
        reference=reference,
        amount=amount,
        currency=currency,
        provider_ref=f"ch_{uuid.uuid4().hex[:8]}",
    )


_STATE = """
SELECT
  (SELECT json_agg(row_to_json(x) ORDER BY x.reference) FROM (
      SELECT reference, status, provider_ref, transfer_id IS NOT NULL AS paid
      FROM payments WHERE reference = ANY(:references)) x)::text AS payments,
  (SELECT json_agg(row_to_json(x) ORDER BY x.event_id) FROM (
      SELECT event_id, outcome, detail, event_type, payload
      FROM webhook_events WHERE provider = 'paystack' AND event_id = ANY(:event_ids)) x)::text
      AS inbox,
  (SELECT json_agg(row_to_json(x) ORDER BY x.reference) FROM (
      SELECT t.reference, t.kind, t.currency, t.metadata, t.fee_bps,
             (SELECT json_agg(json_build_object('account', e.account_id, 'amount', e.amount,
                                                'after', e.balance_after) ORDER BY e.account_id)
              FROM entries e WHERE e.transfer_id = t.id) AS entries,
             (SELECT row_to_json(p) FROM (SELECT fan_id, creator_id, amount, fee, currency,
                 message, payment_id IS NOT NULL AS by_card FROM tips WHERE transfer_id = t.id) p)
                 AS tip,
             (SELECT row_to_json(p) FROM (SELECT buyer_id, content_id, amount, fee, currency,
                 payment_id IS NOT NULL AS by_card FROM entitlements WHERE transfer_id = t.id) p)
                 AS entitlement,
             (SELECT array_agg(o.topic ORDER BY o.topic) FROM outbox o
              WHERE o.topic = 'tip' AND o.ref = t.id) AS outbox
      FROM transfers t
      WHERE t.reference IN (
          SELECT prefix || r FROM unnest(CAST(:references AS text[])) AS r,
                 unnest(ARRAY['payment:', 'tip:payment:', 'purchase:payment:']) AS prefix)
  ) x)::text AS transfers,
  (SELECT json_agg(json_build_object('id', a.id, 'balance', a.balance, 'held', a.held,
                                     'version', a.version) ORDER BY a.id)
   FROM accounts a WHERE a.owner_id = ANY(:users)
      OR (a.owner_id IS NULL AND a.kind IN ('provider_clearing', 'platform_fee')))::text
      AS accounts,
  (SELECT count(*) FROM outbox WHERE topic = 'payment.verify'
      AND ref IN (SELECT id FROM payments WHERE reference = ANY(:references))) AS verify
"""


async def read_state(session, events: list[ProviderEvent], users: list[str]) -> dict[str, Any]:
    parameters = {
        "references": sorted({e.reference for e in events if e.reference}),
        "event_ids": [e.event_id for e in events],
        "users": users,
    }
    return dict((await session.execute(text(_STATE), parameters)).one()._mapping)


Said = tuple[str, str | None, list[tuple[str, str, dict[str, Any]]]]


def shown(user_id: str, type_: str, data: Any) -> tuple[str, str, dict[str, Any]]:
    """An event as both paths write it, but for the sale's transfer id (each posts its own)."""
    return user_id, type_, {k: v for k, v in data.items() if k not in ("tip_id", "transfer_id")}


def said(answer: Applied) -> Said:
    return answer.outcome, answer.detail, [shown(e.user_id, e.type, e.data) for e in answer.events]


async def by_sqlalchemy(
    sessions, events: list[ProviderEvent], users: list[str]
) -> tuple[list[Said], dict[str, Any]]:
    """What apply_event says and leaves for `events`, one after another, rolled back."""
    answers: list[Said] = []
    state: dict[str, Any] = {}
    try:
        async with sessions() as session, session.begin():
            for event in events:
                settled = await apply_event(session, event, "{}")
                answers.append(
                    (
                        settled.outcome,
                        settled.detail,
                        [shown(e.user_id, e.type, e.data) for e in settled.events],
                    )
                )
            state = await read_state(session, events, users)
            raise RolledBack
    except RolledBack:
        pass
    return answers, state


async def by_function(connection, events: list[ProviderEvent]) -> list[Applied]:
    async with connection.transaction():
        return await apply_card_sales(connection, [Delivery(e, "{}") for e in events])


async def prepared(sessions, connection, uid) -> tuple[str, str, str]:
    """A fan, a creator and a second creator; the clearing and fee accounts exist (made by a
    first card tip if they did not: both paths would make them with the next id, and only one
    keeps it)."""
    fan, creator, other = uid("fan"), uid("creator"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, other, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN)
    first = await card_tip(sessions, fan, creator, 1_000)
    [made] = await by_function(connection, [success(first.reference, 1_000)])
    assert (made.outcome, made.detail) == ("applied", None)
    return fan, creator, other


async def test_a_batch_of_card_sales_is_applied_as_apply_event_applies_it(
    connection, sessions, uid
) -> None:
    fan, creator, other = await prepared(sessions, connection, uid)
    song, film = await item(sessions, creator, 700), await item(sessions, other, 900)
    tip = await card_tip(sessions, fan, creator, 2_500, 'thanks "é" 😀')
    to_other = await card_tip(sessions, fan, other, 300)
    bought = await card_purchase(sessions, fan, song, 700)
    again = await card_purchase(sessions, fan, song, 700)  # a second checkout for the song
    film_paid = await card_purchase(sessions, fan, film, 900)
    gone = await card_tip(sessions, fan, uid("nobody"), 400)  # no such creator any more
    wrong = await card_tip(sessions, fan, creator, 600)
    topup = await payment(sessions, fan, 500, Purpose.TOPUP)
    first = success(tip.reference, 2_500)
    events = [
        first,
        success(to_other.reference, 300),
        success(bought.reference, 700),
        success(again.reference, 700),
        success(film_paid.reference, 900),
        success(gone.reference, 400),
        success(wrong.reference, 601),  # amount mismatch
        first,  # the same delivery again
        success(tip.reference, 2_500),  # another event for a payment this batch settles
    ]
    users = [fan, creator, other]
    expected, expected_state = await by_sqlalchemy(sessions, events, users)
    answers = await by_function(connection, events)
    assert [said(a) for a in answers] == expected
    assert [a.outcome for a in answers] == [
        "applied",
        "applied",
        "applied",
        "applied",
        "applied",
        "applied",
        "mismatch",
        "duplicate",
        "ignored",
    ]
    assert answers[3].detail == (
        "purchase not completed (you already have access to this content); credited to the wallet"
    )
    assert answers[5].detail is not None and answers[5].detail.startswith("tip not completed")
    async with sessions() as session:
        assert await read_state(session, events, users) == expected_state
        assert await run_checks(session) == []
    # A top-up's success is not for this function: deferred, nothing written.
    [deferred] = await by_function(connection, [success(topup.reference, 500)])
    assert deferred.deferred and not deferred.events
    [credited] = await apply_topups_once(connection, success(topup.reference, 500))
    assert credited.outcome == "applied"


async def apply_topups_once(connection, event: ProviderEvent) -> list[Applied]:
    async with connection.transaction():
        return await apply_topups(connection, [Delivery(event, "{}")])


async def test_a_sold_event_shows_the_sale_with_its_own_transfer(connection, sessions, uid) -> None:
    fan, creator, _ = await prepared(sessions, connection, uid)
    song = await item(sessions, creator, 1_000)
    paid = await card_purchase(sessions, fan, song, 1_000)
    [answer] = await by_function(connection, [success(paid.reference, 1_000)])
    assert [(e.user_id, e.type) for e in answer.events] == [
        (fan, "payment.succeeded"),
        (fan, "balance.updated"),
        (fan, "ppv.unlocked"),
        (creator, "ppv.sold"),
        (fan, "balance.updated"),
        (creator, "balance.updated"),
    ]
    async with sessions() as session:
        transfer = await session.scalar(
            text("SELECT transfer_id FROM entitlements WHERE buyer_id = :b AND content_id = :c"),
            {"b": fan, "c": song},
        )
    assert answer.events[2].data["transfer_id"] == transfer
    assert answer.events[4].data["balance"] == 0  # credited 1,000, then paid 1,000


async def test_concurrent_batches_of_card_sales_and_wallet_tips_keep_the_books(
    services, connection, sessions, uid
) -> None:
    """Card sales for shared creators from four connections at once, while the same fans' copies
    arrive twice: every payment is credited once, every sale made once, the books balance."""
    fan_ids = [uid("fan") for _ in range(3)]
    creators = [uid("creator") for _ in range(2)]
    for creator in creators:
        await create_user(sessions, creator, Role.CREATOR)
    for fan in fan_ids:
        await create_user(sessions, fan, Role.FAN)
    items = [await item(sessions, creators[k % 2], 100 + k) for k in range(4)]
    events = []
    for n, fan in enumerate(fan_ids):
        for k in range(4):
            tipped = await card_tip(sessions, fan, creators[(n + k) % 2], 50 + k)
            events.append(success(tipped.reference, 50 + k))
            bought = await card_purchase(sessions, fan, items[k], 100 + k)
            events.append(success(bought.reference, 100 + k))

    async def worker(n: int) -> list[Applied]:
        own = await asyncpg.connect(asyncpg_dsn(services.database_url))
        try:
            mine = events[n::2] if n < 2 else list(reversed(events[n - 2 :: 2]))
            answers = []
            for start in range(0, len(mine), 5):
                async with own.transaction():
                    answers += await apply_card_sales(
                        own, [Delivery(e, "{}") for e in mine[start : start + 5]]
                    )
            return answers
        finally:
            await own.close()

    results = await asyncio.gather(*(worker(n) for n in range(4)))
    answers = [a for batch in results for a in batch]
    assert sorted(a.outcome for a in answers).count("applied") == len(events)
    assert {a.outcome for a in answers} == {"applied", "duplicate"}
    assert all(a.detail is None for a in answers if a.outcome == "applied")
    async with sessions() as session:
        sold = await session.scalar(
            text("SELECT count(*) FROM entitlements WHERE buyer_id = ANY(:f)"), {"f": fan_ids}
        )
        tipped = await session.scalar(
            text("SELECT count(*) FROM tips WHERE fan_id = ANY(:f) AND payment_id IS NOT NULL"),
            {"f": fan_ids},
        )
        wallets = await session.scalar(
            text("SELECT sum(balance) FROM accounts WHERE owner_id = ANY(:f) AND kind = 'wallet'"),
            {"f": fan_ids},
        )
        assert (sold, tipped, wallets) == (12, 12, 0)
        assert await run_checks(session) == []


async def test_the_edges_of_a_card_sale_say_what_apply_event_says(
    connection, sessions, uid
) -> None:
    """No fee; one's own item; an item bought before; a seller no longer a creator; a price
    raised after the checkout (the wallet holds the old price only)."""
    fan, creator, other = await prepared(sessions, connection, uid)
    free = await payment(
        sessions, fan, 800, Purpose.TIP, creator_id=creator, message=None, fee_bps=0
    )
    own_item = await item(sessions, creator, 300)
    own = await card_purchase(sessions, creator, own_item, 300)
    song = await item(sessions, other, 200)
    first = await card_purchase(sessions, fan, song, 200)
    [bought] = await by_function(connection, [success(first.reference, 200)])
    assert (bought.outcome, bought.detail) == ("applied", None)
    again = await card_purchase(sessions, fan, song, 200)
    demoted_item = await item(sessions, other, 150)
    demoted = await card_purchase(sessions, fan, demoted_item, 150)
    dearer_item = await item(sessions, creator, 400)
    dearer = await card_purchase(sessions, fan, dearer_item, 400)
    async with sessions() as session, session.begin():
        await session.execute(
            text("UPDATE content SET price = 90000 WHERE id = :c"), {"c": dearer_item}
        )
    events = [
        success(free.reference, 800),
        success(own.reference, 300),
        success(again.reference, 200),
        success(dearer.reference, 400),
    ]
    users = [fan, creator, other]
    expected, expected_state = await by_sqlalchemy(sessions, events, users)
    answers = await by_function(connection, events)
    assert [said(a) for a in answers] == expected
    assert [a.detail is None for a in answers] == [True, False, False, False]
    async with sessions() as session:
        assert await read_state(session, events, users) == expected_state
    # The seller demoted (a step of its own: it changes the seller's role for both paths).
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE users SET role = 'fan' WHERE id = :u"), {"u": other})
    late = [success(demoted.reference, 150)]
    expected, expected_state = await by_sqlalchemy(sessions, late, users)
    answers = await by_function(connection, late)
    assert [said(a) for a in answers] == expected
    assert answers[0].detail == (
        f"purchase not completed (no creator {other}); credited to the wallet"
    )
    async with sessions() as session:
        assert await read_state(session, late, users) == expected_state
        assert await run_checks(session) == []


async def test_details_the_hub_never_writes_keep_the_money_in_the_wallet(
    connection, sessions, uid
) -> None:
    fan, creator, _ = await prepared(sessions, connection, uid)
    nameless = await payment(sessions, fan, 500, Purpose.TIP, fee_bps=1000)
    itemless = await payment(sessions, fan, 500, Purpose.PURCHASE, fee_bps=1000)
    greedy = await payment(
        sessions, fan, 500, Purpose.TIP, creator_id=creator, message=None, fee_bps=20_000
    )
    answers = await by_function(
        connection,
        [success(p.reference, 500) for p in (nameless, itemless, greedy)],
    )
    assert [(a.outcome, a.detail) for a in answers] == [
        (
            "applied",
            "tip not completed (the payment's details name no creator); credited to the wallet",
        ),
        (
            "applied",
            "purchase not completed (the payment's details name no item); credited to the wallet",
        ),
        (
            "applied",
            "tip not completed (the payment's fee rate 20000 bps is out of range); "
            "credited to the wallet",
        ),
    ]
    assert [[e.type for e in a.events] for a in answers] == [
        ["payment.succeeded", "balance.updated"]
    ] * 3
    async with sessions() as session:
        wallet = await session.scalar(
            text(
                "SELECT balance FROM accounts WHERE owner_id = :f AND kind = 'wallet' "
                "AND currency = 'NGN'"
            ),
            {"f": fan},
        )
        assert wallet == 1_500
        assert await run_checks(session) == []


async def test_card_sales_beside_wallet_tips_and_purchases_never_deadlock(
    services, sessions, uid
) -> None:
    """The batch functions lock in one order (payments, purchases' advisory locks, accounts:
    owners' then system, users): card sales, wallet tips and wallet purchases on the same
    wallets, earnings and fee account, all at once, all commit, and the books balance."""
    from ledger.idempotency import request_fingerprint
    from ledger.wallet_purchases import PurchaseCommand, post_wallet_purchases
    from ledger.wallet_tips import TipCommand, post_wallet_tips

    fans = [uid("fan") for _ in range(3)]
    creators = [uid("creator") for _ in range(2)]
    for creator in creators:
        await create_user(sessions, creator, Role.CREATOR)
    for fan in fans:
        await create_user(sessions, fan, Role.FAN, fund=Money(100_000, "NGN"))
    items = [await item(sessions, creators[k % 2], 100 + k) for k in range(6)]
    sales = []
    for n in range(12):
        fan, creator = fans[n % 3], creators[n % 2]
        tipped = await card_tip(sessions, fan, creator, 70 + n)
        sales.append(success(tipped.reference, 70 + n))
        bought = await card_purchase(sessions, fan, items[n % 6], 100 + n % 6)
        sales.append(success(bought.reference, 100 + n % 6))

    def tip(n: int) -> TipCommand:
        body = {"creator_id": creators[n % 2], "amount": 30, "currency": "NGN"}
        return TipCommand(
            fan_id=fans[(n + 1) % 3],
            key=uuid.uuid4().hex,
            fingerprint=request_fingerprint("POST", "/api/v1/tips", body),
            creator_id=creators[n % 2],
            amount=Money(30, "NGN"),
            fee_bps=1000,
            message=None,
        )

    def purchase(n: int) -> PurchaseCommand:
        content_id = items[(n + 3) % 6]
        return PurchaseCommand(
            buyer_id=fans[(n + 2) % 3],
            key=uuid.uuid4().hex,
            fingerprint=request_fingerprint("POST", f"/api/v1/content/{content_id}/purchase", {}),
            content_id=content_id,
            fee_bps=1000,
        )

    async def worker(kind: int) -> list[Any]:
        own = await asyncpg.connect(asyncpg_dsn(services.database_url))
        try:
            answers: list[Any] = []
            for round_ in range(6):
                async with own.transaction():
                    if kind == 0:
                        batch = [Delivery(e, "{}") for e in sales[round_ * 4 : round_ * 4 + 4]]
                        answers += await apply_card_sales(own, batch)
                    elif kind == 1:
                        answers += await post_wallet_tips(
                            own, [tip(round_ * 3 + k) for k in range(3)]
                        )
                    else:
                        answers += await post_wallet_purchases(
                            own, [purchase(round_ * 2 + k) for k in range(2)]
                        )
            return answers
        finally:
            await own.close()

    card, tips_, purchases = await asyncio.gather(*(worker(kind) for kind in range(3)))
    assert [a.outcome for a in card] == ["applied"] * len(sales)
    assert all(a.status == 201 for a in tips_)
    assert {a.status for a in purchases} <= {201, 409}
    async with sessions() as session:
        assert await run_checks(session) == []
