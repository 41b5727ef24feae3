"""Payout requests, many at once, in one call to PostgreSQL (hub_payout_requests, migration
0014).

The call claims each command's Idempotency-Key, holds each amount on the creator's earnings if
their available balance covers it, writes the payout and its `payout.requested` and
`balance.updated` events (whose trigger adds the `payout.send` outbox row), and saves each answer
with the money; a refusal is an answer like any other. It runs on a plain asyncpg
connection, inside the caller's transaction: nothing of it is visible, published or enqueued
before that commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.answers import Answer, answer_of
from ledger.money import Money
from ledger.payments import new_reference
from ledger.payouts import PAYOUT_HOLD_TTL


@dataclass(frozen=True, slots=True)
class PayoutCommand:
    creator_id: str  # the caller
    key: str  # their Idempotency-Key
    fingerprint: str  # of the request (ledger.idempotency.request_fingerprint)
    amount: Money
    provider: str


_CALL = """
SELECT ord, status, body, replayed, refusal, events FROM hub_payout_requests(
    $1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
    $8::interval)
"""


async def post_payout_requests(connection: Any, commands: Sequence[PayoutCommand]) -> list[Answer]:
    """Hold `commands`' payouts in the connection's open transaction, in order, and answer each,
    as ledger.payouts.request_payout does (and its balance.updated event)."""
    rows = await connection.fetch(
        _CALL,
        [c.creator_id for c in commands],
        [c.key for c in commands],
        [c.fingerprint for c in commands],
        [c.amount.amount for c in commands],
        [c.amount.currency for c in commands],
        [c.provider for c in commands],
        [new_reference("po") for _ in commands],
        PAYOUT_HOLD_TTL,  # each payout's hold expires after it, as request_payout's does
    )
    return [answer_of(row) for row in rows]
