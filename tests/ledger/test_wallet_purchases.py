"""hub_wallet_purchases, called as the purchase route calls it: a batch of pay-per-view purchases
from the wallet in one transaction on a plain asyncpg connection. Held to the SQLAlchemy path
itself: the same commands are first run one by one through ledger.content.purchase (each in a
savepoint, as hub.idempotency.run_once runs a command) in a transaction that is rolled back, and
the batch must then answer the same and leave the same rows."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
from sqlalchemy import text

from hub.errors import ledger_error_response
from hub.idempotency import dump_json
from ledger.accounts import Role
from ledger.answers import Answer
from ledger.checks import run_checks
from ledger.content import create_content, purchase
from ledger.db import asyncpg_dsn
from ledger.errors import LedgerError
from ledger.holds import place_hold
from ledger.idempotency import request_fingerprint, transfer_reference
from ledger.money import Money
from ledger.wallet_purchases import PurchaseCommand, post_wallet_purchases
from tests.conftest import create_user
from tests.ledger.parties import RolledBack


def command(
    buyer: str, content_id: int, key: str | None = None, fee_bps: int = 1000
) -> PurchaseCommand:
    return PurchaseCommand(
        buyer_id=buyer,
        key=key or uuid.uuid4().hex,
        fingerprint=request_fingerprint("POST", f"/api/v1/content/{content_id}/purchase", {}),
        content_id=content_id,
        fee_bps=fee_bps,
    )


async def item(sessions: Any, creator: str, price: int, currency: str = "NGN") -> int:
    async with sessions() as session, session.begin():
        made = await create_content(session, creator, f"item é {price}", Money(price, currency))
        return made.id


async def post(connection: Any, commands: list[PurchaseCommand]) -> list[Answer]:
    async with connection.transaction():
        return await post_wallet_purchases(connection, commands)


_STATE = """
SELECT
  (SELECT json_agg(json_build_object('id', a.id, 'balance', a.balance, 'held', a.held,
                                     'version', a.version) ORDER BY a.id)
   FROM accounts a WHERE a.owner_id = ANY(:users))::text AS accounts,
  (SELECT json_agg(json_build_object('buyer', e.buyer_id, 'content', e.content_id,
                                     'amount', e.amount, 'fee', e.fee, 'currency', e.currency,
                                     'payment', e.payment_id, 'metadata', t.metadata,
                                     'kind', t.kind, 'fee_bps', t.fee_bps)
                   ORDER BY e.buyer_id, e.content_id)
   FROM entitlements e JOIN transfers t ON t.id = e.transfer_id
   WHERE e.buyer_id = ANY(:users))::text AS entitlements
"""


async def read_state(session: Any, users: list[str]) -> dict[str, Any]:
    return dict((await session.execute(text(_STATE), {"users": users})).one()._mapping)


Said = tuple[int, str, list[tuple[str, str, dict[str, Any]]]]


def said(status: int, body: str, events: Any) -> Said:
    """An answer, byte for byte, but for what differs between two postings of it: the
    transfer's id and time (in the body and the events)."""
    if status == 201:
        document = json.loads(body)
        body = body.replace(f'"id":{document["id"]},', '"id":ID,', 1)
        body = body.replace(f'"created_at":"{document["created_at"]}"', '"created_at":AT', 1)
    return (
        status,
        body,
        [
            (e.user_id, e.type, {k: v for k, v in e.data.items() if k != "transfer_id"})
            for e in events
        ],
    )


async def by_sqlalchemy(
    sessions: Any, commands: list[PurchaseCommand], users: list[str]
) -> tuple[list[Said], dict[str, Any]]:
    """What ledger.content.purchase answers for `commands` one after another, and the rows it
    leaves, in a transaction then rolled back."""
    answers: list[Said] = []
    state: dict[str, Any] = {}
    try:
        async with sessions() as session, session.begin():
            for c in commands:
                try:
                    async with session.begin_nested():
                        bought = await purchase(
                            session,
                            buyer_id=c.buyer_id,
                            content_id=c.content_id,
                            fee_bps=c.fee_bps,
                            reference=transfer_reference("purchase", c.buyer_id, c.key),
                        )
                    answers.append(said(201, dump_json(bought.as_json()), bought.events))
                except LedgerError as exc:
                    status, body = ledger_error_response(exc)
                    answers.append(said(status, dump_json(body), []))
            state = await read_state(session, users)
            raise RolledBack
    except RolledBack:
        pass
    return answers, state


async def test_a_batch_answers_and_posts_as_the_sqlalchemy_path(
    connection, sessions, uid: Callable[[str], str]
) -> None:
    fan, poor, owner, creator, other = (
        uid("fan"),
        uid("poor"),
        uid("owner"),
        uid("creator"),
        uid("creator"),
    )
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, other, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(1_000, "NGN"))
    await create_user(sessions, poor, Role.FAN, fund=Money(50, "NGN"))
    await create_user(sessions, owner, Role.FAN, fund=Money(1_000, "NGN"))
    cheap, dear, others, dollars = (
        await item(sessions, creator, 300),
        await item(sessions, creator, 650),
        await item(sessions, other, 333),
        await item(sessions, creator, 5, "USD"),
    )
    (earlier,) = await post(connection, [command(owner, cheap)])
    assert earlier.status == 201
    batch = [
        command(fan, cheap),  # fits: 700 left
        command(fan, dear),  # fits: 50 left
        command(fan, others),  # 333 > 50
        command(fan, cheap),  # bought by this batch already, under another key
        command(poor, cheap),  # insufficient
        command(owner, cheap),  # bought before the batch
        command(creator, dear),  # one's own item
        command(fan, 10**12),  # no such item
        command(fan, dollars),  # no dollars in the wallet
        command(owner, others),  # fits
    ]
    users = [fan, poor, owner, creator, other]
    expected, expected_state = await by_sqlalchemy(sessions, batch, users)
    answers = await post(connection, batch)
    assert [said(a.status, a.body, a.events) for a in answers] == expected
    async with sessions() as session:
        assert await read_state(session, users) == expected_state
    assert [a.status for a in answers] == [201, 201, 402, 409, 402, 409, 422, 404, 402, 201]
    assert [(e.user_id, e.type) for e in answers[0].events] == [
        (fan, "ppv.unlocked"),
        (creator, "ppv.sold"),
        (fan, "balance.updated"),
        (creator, "balance.updated"),
    ]
    body = json.loads(answers[0].body)
    assert all(e.data["transfer_id"] == body["id"] for e in answers[0].events[:2])
    # A creator's events in one batch are numbered in the batch's order, after earlier ones.
    seqs = [e.seq for a in [earlier, *answers] for e in a.events if e.user_id == creator]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    async with sessions() as session:
        assert await run_checks(session) == []


async def test_the_edges_answer_as_the_sqlalchemy_path(
    connection, sessions, uid: Callable[[str], str]
) -> None:
    """No fee, a wallet with money on hold, a seller no longer a creator, and a key whose record
    expired while its transfer stayed (its reference is taken: refused after the funds)."""
    fan, held, late, broke = uid("fan"), uid("held"), uid("late"), uid("broke")
    creator, demoted = uid("creator"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, demoted, Role.CREATOR)
    for buyer, money in ((fan, 1_000), (held, 1_000), (late, 1_000), (broke, 120)):
        await create_user(sessions, buyer, Role.FAN, fund=Money(money, "NGN"))
    one, two, gone = (
        await item(sessions, creator, 100),
        await item(sessions, creator, 400),
        await item(sessions, demoted, 100),
    )
    async with sessions() as session, session.begin():
        wallet = await session.scalar(
            text(
                "SELECT id FROM accounts WHERE owner_id = :u AND kind = 'wallet' "
                "AND currency = 'NGN'"
            ),
            {"u": held},
        )
        await place_hold(session, wallet, 500, "NGN", f"hold:{held}", timedelta(days=1))
        await session.execute(text("UPDATE users SET role = 'fan' WHERE id = :u"), {"u": demoted})
    # Two keys whose records expire after their purchases: used again, their references are taken.
    late_key, broke_key = uuid.uuid4().hex, uuid.uuid4().hex
    firsts = await post(connection, [command(late, one, late_key), command(broke, one, broke_key)])
    assert [a.status for a in firsts] == [201, 201]
    async with sessions() as session, session.begin():
        await session.execute(
            text("DELETE FROM idempotency_keys WHERE key = ANY(:k)"), {"k": [late_key, broke_key]}
        )
    batch = [
        command(fan, one, fee_bps=0),  # no fee: two legs
        command(held, two),  # 1,000 - 500 held covers 400
        command(held, one),  # exactly the 100 left above the hold
        command(fan, gone),  # its seller is no creator any more
        command(late, two, late_key),  # affordable: the reference is what refuses it
        command(broke, two, broke_key),  # 400 > 20 left: the funds refuse it first
    ]
    users = [fan, held, late, broke, creator, demoted]
    expected, expected_state = await by_sqlalchemy(sessions, batch, users)
    answers = await post(connection, batch)
    assert [said(a.status, a.body, a.events) for a in answers] == expected
    assert [a.status for a in answers] == [201, 201, 201, 404, 409, 402]
    assert json.loads(answers[0].body)["fee"]["amount"] == 0
    async with sessions() as session:
        assert await read_state(session, users) == expected_state
        assert await run_checks(session) == []


async def test_a_key_committed_during_the_claim_is_in_flight_not_reused(
    services, connection, sessions, uid: Callable[[str], str]
) -> None:
    """Another transaction claims the key and commits while the batch waits on its row: the
    batch's snapshot cannot see the row, and the retry is told to wait (409), not that the key
    was used for another request (422)."""
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(1_000, "NGN"))
    bought = command(fan, await item(sessions, creator, 100))
    other = await asyncpg.connect(asyncpg_dsn(services.database_url))
    try:
        claim = other.transaction()
        await claim.start()
        await other.execute(
            "INSERT INTO idempotency_keys (caller_id, key, request_hash) VALUES ($1, $2, $3)",
            fan,
            bought.key,
            bought.fingerprint,
        )
        batch = asyncio.ensure_future(post(connection, [bought]))
        await asyncio.sleep(0.3)  # the batch now waits on the uncommitted row
        assert not batch.done()
        await claim.commit()
        (answer,) = await batch
    finally:
        await other.close()
    assert type(answer.error).__name__ == "IdempotencyInFlight"


async def test_keys_replay_refuse_reuse_and_hold_copies_in_flight(
    connection, sessions, uid: Callable[[str], str]
) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(100, "NGN"))
    first, second = await item(sessions, creator, 60), await item(sessions, creator, 60)
    bought, refused = command(fan, first), command(fan, second)
    answers = await post(connection, [bought, refused])
    assert [a.status for a in answers] == [201, 402]
    again = await post(
        connection,
        [
            bought,
            refused,
            replace(command(fan, first), key=bought.key),  # the key, for another request
            command(fan, second, key="twice"),
            command(fan, second, key="twice"),
        ],
    )
    # The same requests again get the same answers, with no new events; a refusal is pinned too.
    assert [(a.status, a.body, a.replayed) for a in again[:2]] == [
        (a.status, a.body, True) for a in answers
    ]
    assert not any(a.events for a in again[:2])
    # The same key twice in one batch: the second copy is in flight, whatever it asks.
    assert type(again[2].error).__name__ == "IdempotencyInFlight"
    (reused,) = await post(connection, [replace(bought, fingerprint="another request")])
    assert type(reused.error).__name__ == "IdempotencyKeyReused"
    assert (again[3].status, json.loads(again[3].body)["error"]["type"]) == (
        402,
        "insufficient_funds",
    )
    assert type(again[4].error).__name__ == "IdempotencyInFlight"
    async with sessions() as session:
        status = await session.scalar(
            text("SELECT status_code FROM idempotency_keys WHERE caller_id = :c AND key = 'twice'"),
            {"c": fan},
        )
    assert status == 402


async def test_concurrent_batches_buy_each_item_once_per_buyer(
    services, sessions, uid: Callable[[str], str]
) -> None:
    """Six connections, each posting batches in which the same buyers buy the same items under
    new keys, in other orders: every batch commits, each buyer pays for each item once, and the
    rest are refused as already purchased."""
    creators = [uid("creator") for _ in range(2)]
    fans = [uid("fan") for _ in range(4)]
    for creator in creators:
        await create_user(sessions, creator, Role.CREATOR)
    for fan in fans:
        await create_user(sessions, fan, Role.FAN, fund=Money(10_000, "NGN"))
    items = [await item(sessions, creators[k % 2], 100 + k) for k in range(5)]

    async def worker(n: int) -> list[Answer]:
        connection = await asyncpg.connect(asyncpg_dsn(services.database_url))
        try:
            answers = []
            for round_ in range(4):
                batch = [command(fans[(n + k) % 4], items[(n * k + round_) % 5]) for k in range(6)]
                answers += await post(connection, list(reversed(batch)) if n % 2 else batch)
            return answers
        finally:
            await connection.close()

    results = await asyncio.gather(*(worker(n) for n in range(6)))
    answers = [a for batch in results for a in batch]
    assert {a.status for a in answers} <= {201, 409}
    bought = [json.loads(a.body) for a in answers if a.status == 201]
    pairs = [(b["buyer_id"], b["content_id"]) for b in bought]
    assert len(pairs) == len(set(pairs))
    async with sessions() as session:
        rows = (
            await session.execute(
                text("SELECT buyer_id, content_id FROM entitlements WHERE buyer_id = ANY(:f)"),
                {"f": fans},
            )
        ).all()
        assert sorted(pairs) == sorted((r.buyer_id, r.content_id) for r in rows)
        for fan in fans:
            spent = sum(b["amount"]["amount"] for b in bought if b["buyer_id"] == fan)
            balance = await session.scalar(
                text(
                    "SELECT balance FROM accounts WHERE owner_id = :f AND kind = 'wallet' "
                    "AND currency = 'NGN'"
                ),
                {"f": fan},
            )
            assert balance == 10_000 - spent
        assert await run_checks(session) == []


async def test_a_huge_price_at_a_high_fee_is_refused_for_funds(
    connection, sessions, uid: Callable[[str], str]
) -> None:
    """The fee of a price near 2^53 at 50 % passes bigint's range as a product: it is computed
    as ledger.money.platform_fee computes it, and the buyer is told what purchase() tells."""
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(1_000, "NGN"))
    batch = [command(fan, await item(sessions, creator, 2**53 - 1), fee_bps=5000)]
    expected, _ = await by_sqlalchemy(sessions, batch, [fan])
    answers = await post(connection, batch)
    assert [said(a.status, a.body, a.events) for a in answers] == expected
    assert answers[0].status == 402
