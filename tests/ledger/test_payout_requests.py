"""hub_payout_requests, called as the payout route calls it: a batch of payout requests in one
transaction on a plain asyncpg connection. Held to the SQLAlchemy path itself: the same commands
are first run one by one through ledger.payouts.request_payout (each in a savepoint, as
hub.idempotency.run_once runs a command) in a transaction that is rolled back, and the batch must
then answer the same and leave the same rows, with each payout's sending in the outbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from hub.errors import ledger_error_response
from hub.idempotency import dump_json
from ledger.accounts import Role
from ledger.answers import Answer
from ledger.checks import run_checks
from ledger.errors import LedgerError
from ledger.idempotency import request_fingerprint
from ledger.money import Money
from ledger.payout_requests import PayoutCommand, post_payout_requests
from ledger.payouts import request_payout
from tests.conftest import create_user
from tests.ledger.parties import RolledBack, earning

pytestmark = pytest.mark.usefixtures("no_remote_followups")


def command(creator: str, amount: int, currency: str = "NGN") -> PayoutCommand:
    body = {"amount": amount, "currency": currency}
    return PayoutCommand(
        creator_id=creator,
        key=uuid.uuid4().hex,
        fingerprint=request_fingerprint("POST", "/api/v1/payouts", body),
        amount=Money(amount, currency),
        provider="paystack",
    )


async def post(connection: Any, commands: list[PayoutCommand]) -> list[Answer]:
    async with connection.transaction():
        return await post_payout_requests(connection, commands)


_STATE = """
SELECT
  (SELECT json_agg(json_build_object('id', a.id, 'balance', a.balance, 'held', a.held,
                                     'version', a.version) ORDER BY a.id)
   FROM accounts a WHERE a.owner_id = ANY(:users))::text AS accounts,
  (SELECT json_agg(json_build_object('creator', p.creator_id, 'amount', p.amount,
                                     'currency', p.currency, 'provider', p.provider,
                                     'status', p.status, 'hold_amount', h.amount,
                                     'hold_status', h.status, 'hold_account', h.account_id,
                                     'hold_ttl', h.expires_at - h.created_at,
                                     'hold_reference_is_payouts', h.reference = p.reference)
                   ORDER BY p.creator_id, p.amount)
   FROM payouts p JOIN holds h ON h.id = p.hold_id
   WHERE p.creator_id = ANY(:users))::text AS payouts
"""


async def read_state(session: Any, users: list[str]) -> dict[str, Any]:
    return dict((await session.execute(text(_STATE), {"users": users})).one()._mapping)


Said = tuple[int, dict[str, Any], list[tuple[str, str, dict[str, Any]]]]


def said(status: int, body: str, events: Any) -> Said:
    """An answer without what differs between two requests of one payout: id, reference, times."""
    unique = ("id", "reference", "created_at", "updated_at")
    document = json.loads(body)
    if status == 201:
        for name in unique:
            del document[name]
    shown = [
        (
            e.user_id,
            e.type,
            {k: v for k, v in e.data.items() if e.type == "balance.updated" or k not in unique},
        )
        for e in events
    ]
    return status, document, shown


async def by_sqlalchemy(
    sessions: Any, commands: list[PayoutCommand], users: list[str]
) -> tuple[list[Said], dict[str, Any]]:
    answers: list[Said] = []
    state: dict[str, Any] = {}
    try:
        async with sessions() as session, session.begin():
            for c in commands:
                try:
                    async with session.begin_nested():
                        change = await request_payout(
                            session, creator_id=c.creator_id, amount=c.amount, provider=c.provider
                        )
                    answers.append(said(201, dump_json(change.payout.as_json()), change.events))
                except LedgerError as exc:
                    status, body = ledger_error_response(exc)
                    answers.append(said(status, dump_json(body), []))
            state = await read_state(session, users)
            raise RolledBack
    except RolledBack:
        pass
    return answers, state


async def test_a_batch_answers_and_holds_as_the_sqlalchemy_path(
    connection, sessions, uid: Callable[[str], str]
) -> None:
    rich, poor = await earning(sessions, uid, 1_000), await earning(sessions, uid, 100)
    fan = uid("fan")
    await create_user(sessions, fan, Role.FAN)
    batch = [
        command(rich, 600),  # fits: 400 left
        command(rich, 500),  # more than what is left
        command(rich, 400),  # exactly what is left
        command(poor, 101),  # more than earned
        command(poor, 5, "USD"),  # nothing earned in dollars
        command(poor, 5, "EUR"),  # no earnings account in euros at all
        command(fan, 10),  # not a creator
        command(uid("nobody"), 10),  # no such user
        command(poor, 100),  # fits
    ]
    users = [rich, poor, fan]
    expected, expected_state = await by_sqlalchemy(sessions, batch, users)
    answers = await post(connection, batch)
    assert [said(a.status, a.body, a.events) for a in answers] == expected
    assert [a.status for a in answers] == [201, 402, 201, 402, 402, 404, 404, 404, 201]
    async with sessions() as session:
        assert await read_state(session, users) == expected_state
        # The body is the payout as saved, and its sending is in the outbox with it.
        made = [json.loads(a.body) for a in answers if a.status == 201]
        rows = (
            await session.execute(
                text(
                    "SELECT p.id, p.reference, p.created_at, p.updated_at, o.topic "
                    "FROM payouts p LEFT JOIN outbox o ON o.ref = p.id AND o.topic = 'payout.send' "
                    "WHERE p.id = ANY(:ids) ORDER BY p.id"
                ),
                {"ids": [m["id"] for m in made]},
            )
        ).all()
        assert [
            (r.id, r.reference, r.created_at.isoformat(), r.updated_at.isoformat(), r.topic)
            for r in rows
        ] == [
            (m["id"], m["reference"], m["created_at"], m["updated_at"], "payout.send") for m in made
        ]
        assert await run_checks(session) == []
    # The same requests again: the same answers, replayed, with no new hold or event.
    again = await post(connection, batch)
    assert [(a.status, a.body, True) for a in answers] == [
        (a.status, a.body, a.replayed) for a in again
    ]
    assert not any(a.events for a in again)
    async with sessions() as session:
        assert await read_state(session, users) == expected_state
