"""hub_wallet_tips, called as the hot path calls it: a batch of tips in one transaction on a plain
asyncpg connection. Each answer is the one the SQLAlchemy path gave (the same body, byte for
byte, and the same events); refusals stay with their commands; the books balance."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import asyncpg
from sqlalchemy import text

from hub.errors import ledger_error_response
from hub.idempotency import dump_json
from ledger.accounts import Role
from ledger.answers import Answer
from ledger.checks import run_checks
from ledger.db import asyncpg_dsn
from ledger.errors import LedgerError
from ledger.idempotency import request_fingerprint
from ledger.money import Money
from ledger.sales import Sale
from ledger.tips import Tip, send_tip
from ledger.transfers import PostedEntry, PostedTransfer
from ledger.wallet_tips import TipCommand, post_wallet_tips
from tests.conftest import create_user


def command(fan: str, creator: str, amount: int, key: str | None = None, **more: Any) -> TipCommand:
    key = key or uuid.uuid4().hex
    body = {"creator_id": creator, "amount": amount, "currency": "NGN", **more}
    return TipCommand(
        fan_id=fan,
        key=key,
        fingerprint=request_fingerprint("POST", "/api/v1/tips", body),
        creator_id=creator,
        amount=Money(amount, "NGN"),
        fee_bps=1000,
        message=more.get("message"),
    )


async def post(connection: Any, commands: list[TipCommand]) -> list[Answer]:
    async with connection.transaction():
        return await post_wallet_tips(connection, commands)


async def expected_body(sessions: Any, transfer_id: int, message: str | None) -> str:
    """The body the SQLAlchemy path answers for this tip: ledger.tips.Tip.as_json() of the
    posted rows, as dump_json writes it."""
    async with sessions() as session:
        tip = (
            await session.execute(
                text(
                    "SELECT t.currency, t.created_at, p.fan_id, p.creator_id, p.amount, p.fee "
                    "FROM transfers t JOIN tips p ON p.transfer_id = t.id WHERE t.id = :id"
                ),
                {"id": transfer_id},
            )
        ).one()
        rows = (
            await session.execute(
                text(
                    "SELECT e.account_id, a.owner_id, a.kind, e.amount, e.balance_after "
                    "FROM entries e JOIN accounts a ON a.id = e.account_id "
                    "WHERE e.transfer_id = :id ORDER BY e.account_id"
                ),
                {"id": transfer_id},
            )
        ).all()
    entries = tuple(
        PostedEntry(r.account_id, r.owner_id, r.kind, r.amount, r.balance_after, 0) for r in rows
    )
    transfer = PostedTransfer(transfer_id, "tip", tip.currency, tip.created_at, entries)
    by_kind = {e.kind: e for e in entries}
    sale = Sale(transfer, tip.fee, by_kind["wallet"], by_kind["earnings"])
    money = Money(tip.amount, tip.currency)
    return dump_json(Tip(sale, tip.fan_id, tip.creator_id, money, message, []).as_json())


async def refusal_body(sessions: Any, command: TipCommand) -> str:
    """The error body the SQLAlchemy path answers for `command` (ledger.tips.send_tip, rolled
    back), as hub.idempotency.run_once saves it."""
    try:
        async with sessions() as session, session.begin():
            await send_tip(
                session,
                fan_id=command.fan_id,
                creator_id=command.creator_id,
                amount=command.amount,
                message=command.message,
                fee_bps=command.fee_bps,
                reference=f"refusal-oracle:{uuid.uuid4().hex}",
            )
    except LedgerError as exc:
        return dump_json(ledger_error_response(exc)[1])
    raise AssertionError("the SQLAlchemy path posted it")


async def test_a_tip_answers_as_the_sqlalchemy_path_and_writes_its_events(
    connection, sessions, uid: Callable[[str], str]
) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(10_000, "NGN"))
    message = 'Great stream! "quoted" \\ é 😀\nline'
    (answer,) = await post(connection, [command(fan, creator, 1_234, message=message)])
    assert answer.status == 201 and not answer.replayed and answer.error is None
    body = json.loads(answer.body)
    assert answer.body == await expected_body(sessions, body["id"], message)
    assert (body["fee"]["amount"], body["net"]["amount"]) == (123, 1_111)
    assert [(e.user_id, e.type) for e in answer.events] == [
        (creator, "tip.received"),
        (fan, "tip.sent"),
        (fan, "balance.updated"),
        (creator, "balance.updated"),
    ]
    received = answer.events[0].data
    assert received == {
        "tip_id": body["id"],
        "fan_id": fan,
        "fan_name": None,
        "creator_id": creator,
        "amount": 1_234,
        "fee": 123,
        "net": 1_111,
        "currency": "NGN",
        "message": message,
        "payment_id": None,
    }
    assert answer.events[1].data == received
    wallet, earnings = answer.events[2].data, answer.events[3].data
    assert (wallet["kind"], wallet["balance"], wallet["available"]) == ("wallet", 8_766, 8_766)
    assert (earnings["kind"], earnings["balance"]) == ("earnings", 1_111)
    assert [e.seq for e in answer.events if e.user_id == fan][-1] >= 2
    async with sessions() as session:
        assert await run_checks(session) == []


async def test_one_batch_posts_the_good_and_answers_every_refusal(
    connection, sessions, uid: Callable[[str], str]
) -> None:
    fan, poor, creator, other = uid("fan"), uid("poor"), uid("creator"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, other, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(1_000, "NGN"))
    await create_user(sessions, poor, Role.FAN, fund=Money(50, "NGN"))
    used = command(fan, creator, 10)
    (first,) = await post(connection, [used])
    assert first.status == 201
    batch = [
        command(fan, creator, 600),  # fits
        command(fan, other, 500),  # the wallet has 390 left after the first of the batch
        command(fan, other, 300),  # fits what is left
        command(poor, creator, 100),  # insufficient
        command(fan, uid("nobody"), 10),  # no such creator
        command(fan, fan, 10),  # to oneself
        replace(used, fingerprint="another request"),  # key reused
        command(fan, creator, 10, key="twice"),
        command(fan, creator, 10, key="twice"),  # the same key again in the batch: in flight
    ]
    answers = await post(connection, batch)
    kinds = [
        (
            a.status,
            a.error.__class__.__name__
            if a.error
            else json.loads(a.body).get("error", {}).get("type"),
        )
        for a in answers
    ]
    for n in (1, 3, 4, 5):  # insufficient funds, no such creator, to oneself
        assert answers[n].body == await refusal_body(sessions, batch[n]), n
    assert kinds == [
        (201, None),
        (402, "insufficient_funds"),
        (201, None),
        (402, "insufficient_funds"),
        (404, "creator_not_found"),
        (422, "invalid_request"),
        (422, "IdempotencyKeyReused"),
        (201, None),
        (409, "IdempotencyInFlight"),
    ]
    balances = {
        e.data["kind"]: e.data["balance"] for e in answers[7].events if e.type == "balance.updated"
    }
    assert balances["wallet"] == 1_000 - 10 - 600 - 300 - 10
    # Every refusal is pinned to its key: the same request again gets the same answer.
    again = await post(connection, [used, batch[1], batch[3], batch[4], batch[5]])
    assert [(a.status, a.body, a.replayed) for a in again] == [
        (a.status, a.body, True) for a in (first, answers[1], answers[3], answers[4], answers[5])
    ]
    assert not any(a.events for a in again)
    # A creator's events in one batch are numbered in the batch's order.
    seqs = [e.seq for a in answers for e in a.events if e.user_id == creator]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    async with sessions() as session:
        assert await run_checks(session) == []


async def test_concurrent_batches_on_shared_accounts_do_not_deadlock_or_overdraw(
    services, sessions, uid: Callable[[str], str]
) -> None:
    """Eight connections, each posting batches that cross the same fans and creators in other
    orders: every batch commits, and the fans' wallets pay exactly what they could."""
    creators = [uid("creator") for _ in range(3)]
    fans = [uid("fan") for _ in range(4)]
    for creator in creators:
        await create_user(sessions, creator, Role.CREATOR)
    for fan in fans:
        await create_user(sessions, fan, Role.FAN, fund=Money(1_000, "NGN"))

    async def worker(n: int) -> list[Answer]:
        connection = await asyncpg.connect(asyncpg_dsn(services.database_url))
        try:
            answers = []
            for round_ in range(5):
                batch = [
                    command(fans[(n + k) % 4], creators[(n * k + round_) % 3], 37) for k in range(6)
                ]
                answers += await post(connection, list(reversed(batch)) if n % 2 else batch)
            return answers
        finally:
            await connection.close()

    results = await asyncio.gather(*(worker(n) for n in range(8)))
    answers = [a for batch in results for a in batch]
    paid = sum(1 for a in answers if a.status == 201)
    assert paid == 4 * (1_000 // 37)  # each wallet pays 27 tips of 37, then is refused
    assert all(a.status in (201, 402) for a in answers)
    async with sessions() as session:
        assert await run_checks(session) == []


async def test_a_taken_reference_is_refused_after_the_funds_and_a_huge_fee_does_not_overflow(
    connection, sessions, uid: Callable[[str], str]
) -> None:
    """As send_tip answers: a key whose record expired while its tip stayed is refused for its
    taken reference only when the wallet could pay (post_transfer checks funds first); and a
    tip near 2^53 at a 50 % fee is refused for funds, not failed on bigint arithmetic."""
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(1_000, "NGN"))
    first = command(fan, creator, 100)
    (tipped,) = await post(connection, [first])
    assert tipped.status == 201
    async with sessions() as session, session.begin():
        await session.execute(
            text("DELETE FROM idempotency_keys WHERE caller_id = :c AND key = :k"),
            {"c": fan, "k": first.key},
        )
    too_much = command(fan, creator, 5_000, key=first.key)
    huge = replace(command(fan, creator, 2**53 - 1), fee_bps=5000)
    answers = await post(connection, [too_much, huge])
    # The refusal was saved under the key: a new key's record again, for an affordable tip.
    async with sessions() as session, session.begin():
        await session.execute(
            text("DELETE FROM idempotency_keys WHERE caller_id = :c AND key = :k"),
            {"c": fan, "k": first.key},
        )
    answers += await post(connection, [command(fan, creator, 100, key=first.key)])
    answers = [answers[0], answers[2], answers[1]]
    assert [a.status for a in answers] == [402, 409, 402]
    assert answers[0].body == await refusal_body(sessions, too_much)
    assert json.loads(answers[1].body)["error"]["type"] == "duplicate_transfer"
    assert answers[2].body == await refusal_body(sessions, huge)
