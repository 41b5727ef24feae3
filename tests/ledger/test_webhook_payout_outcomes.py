"""hub_webhook_payout_outcomes, called as the webhook route calls it: a batch of a provider's
words on payouts (transfer succeeded, failed, reversed) in one transaction on a plain asyncpg
connection. Held to the SQLAlchemy path itself: the same events are first applied one after
another by ledger.settlement.apply_event in a transaction that is rolled back, and the batch
function must then say the same, write the same events and leave the same rows."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import text

from ledger.checks import run_checks
from ledger.money import Money
from ledger.payouts import mark_processing, request_payout
from ledger.provider_events import EventKind, ProviderEvent
from ledger.settlement import apply_event
from ledger.webhook_topups import Applied, Delivery, apply_payout_outcomes, batchable
from tests.ledger.parties import RolledBack, earning

pytestmark = pytest.mark.usefixtures("no_remote_followups")  # their payouts' sending


async def payout(sessions, creator: str, amount: int, processing: bool = False) -> str:
    async with sessions() as session, session.begin():
        change = await request_payout(
            session, creator_id=creator, amount=Money(amount, "NGN"), provider="paystack"
        )
        if processing:
            await mark_processing(session, change.payout.id, f"TRF_{uuid.uuid4().hex[:8]}")
        return change.payout.reference


def outcome(
    kind: EventKind, reference: str | None, amount: int | None, **more: Any
) -> ProviderEvent:
    return ProviderEvent(
        provider=more.get("provider", "paystack"),
        event_id=more.get("event_id", uuid.uuid4().hex),
        type=kind.value,
        kind=kind,
        reference=reference,
        amount=amount,
        payload=more.get("payload", {}),
    )


_STATE = """
SELECT
  (SELECT json_agg(row_to_json(x) ORDER BY x.reference) FROM (
      SELECT y.reference, y.status, y.failure_reason, y.transfer_id IS NOT NULL AS paid,
             h.status AS hold, h.transfer_id IS NOT NULL AS hold_posted
      FROM payouts y JOIN holds h ON h.id = y.hold_id
      WHERE y.creator_id = ANY(:users)) x)::text AS payouts,
  (SELECT json_agg(row_to_json(x) ORDER BY x.event_id) FROM (
      SELECT event_id, outcome, detail, event_type
      FROM webhook_events WHERE event_id = ANY(:event_ids)) x)::text AS inbox,
  (SELECT json_agg(row_to_json(x) ORDER BY x.reference) FROM (
      SELECT t.reference, t.kind, t.currency, t.metadata, t.fee_bps,
             t.reverses_id IS NOT NULL AS reverses,
             (SELECT json_agg(json_build_object('account', e.account_id, 'amount', e.amount,
                                                'after', e.balance_after) ORDER BY e.account_id)
              FROM entries e WHERE e.transfer_id = t.id) AS entries
      FROM transfers t JOIN payouts y
        ON t.reference IN ('payout:' || y.reference, 'payout-reversal:' || y.reference)
      WHERE y.creator_id = ANY(:users)) x)::text AS transfers,
  (SELECT json_agg(json_build_object('id', a.id, 'balance', a.balance, 'held', a.held,
                                     'version', a.version) ORDER BY a.id)
   FROM accounts a WHERE a.owner_id = ANY(:users)
      OR (a.owner_id IS NULL AND a.kind = 'provider_clearing'))::text AS accounts
"""


async def read_state(session, events: list[ProviderEvent], users: list[str]) -> dict[str, Any]:
    parameters = {"event_ids": [e.event_id for e in events], "users": users}
    return dict((await session.execute(text(_STATE), parameters)).one()._mapping)


def shown(user_id: str, type_: str, data: Any) -> tuple[str, str, dict[str, Any]]:
    """An event as both paths write it, but for the payout's update time (each its own)."""
    return user_id, type_, {k: v for k, v in data.items() if k != "updated_at"}


def said(answer: Applied) -> tuple[Any, ...]:
    return answer.outcome, answer.detail, [shown(e.user_id, e.type, e.data) for e in answer.events]


async def by_sqlalchemy(sessions, events: list[ProviderEvent], users: list[str]):
    answers: list[tuple[Any, ...]] = []
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
        return await apply_payout_outcomes(connection, [Delivery(e, "{}") for e in events])


async def test_payout_outcomes_are_applied_as_apply_event_applies_them(
    connection, sessions, uid
) -> None:
    creator, other = await earning(sessions, uid, 10_000), await earning(sessions, uid, 1_000)
    # The clearing account exists (both paths would make it with the next id, one keeps it).
    first = await payout(sessions, creator, 100)
    [made] = await by_function(connection, [outcome(EventKind.TRANSFER_SUCCEEDED, first, 100)])
    assert (made.outcome, made.detail) == ("applied", None)

    a, b, c = [await payout(sessions, creator, n) for n in (1_000, 2_000, 300)]
    expired = await payout(sessions, other, 400)
    sent = await payout(sessions, other, 500, processing=True)
    async with sessions() as session, session.begin():  # the hold expired and was given back
        await session.execute(
            text(
                "WITH h AS (UPDATE holds SET status = 'voided', resolved_at = now() "
                "WHERE reference = :r RETURNING account_id, amount) "
                "UPDATE accounts a SET held = a.held - h.amount, version = a.version + 1 "
                "FROM h WHERE a.id = h.account_id"
            ),
            {"r": expired},
        )
    succeeded = outcome(EventKind.TRANSFER_SUCCEEDED, a, 1_000)
    events = [
        succeeded,
        succeeded,  # the same delivery again
        outcome(EventKind.TRANSFER_FAILED, b, 2_000, payload={"reason": "account closed"}),
        outcome(EventKind.TRANSFER_SUCCEEDED, b, 2_000),  # after its failure: ignored
        outcome(EventKind.TRANSFER_REVERSED, a, None, payload={"reason": ""}),
        outcome(EventKind.TRANSFER_SUCCEEDED, c, 301),  # amount
        outcome(EventKind.TRANSFER_SUCCEEDED, "po_nope'\"x", 300),  # no such payout
        outcome(EventKind.TRANSFER_SUCCEEDED, c, 300, provider="stripe"),  # not stripe's
        outcome(EventKind.TRANSFER_FAILED, c, 300),  # no reason given
        outcome(EventKind.TRANSFER_SUCCEEDED, expired, 400),  # its hold is gone
        outcome(EventKind.TRANSFER_SUCCEEDED, sent, 500),  # processing
        outcome(EventKind.TRANSFER_SUCCEEDED, None, 500),  # no reference
    ]
    assert all(batchable(e) for e in events)
    users = [creator, other]
    expected, expected_state = await by_sqlalchemy(sessions, events, users)
    answers = await by_function(connection, events)
    assert [said(x) for x in answers] == expected
    assert [x.outcome for x in answers] == [
        "applied",
        "duplicate",
        "applied",
        "ignored",
        "applied",
        "mismatch",
        "mismatch",
        "mismatch",
        "applied",
        "mismatch",
        "applied",
        "mismatch",
    ]
    assert [e.type for e in answers[4].events] == ["payout.failed", "balance.updated"]
    async with sessions() as session:
        assert await read_state(session, events, users) == expected_state
        assert await run_checks(session) == []


def test_a_reason_that_is_not_text_is_apply_events_to_refuse() -> None:
    odd = outcome(EventKind.TRANSFER_FAILED, "po_x", 1, payload={"reason": {"code": 7}})
    assert not batchable(odd)
    assert batchable(outcome(EventKind.TRANSFER_FAILED, "po_x", 1, payload={"reason": "no"}))
    assert not batchable(outcome(EventKind.REFUND_PROCESSED, "po_x", 1))
