"""Wallet tips, many at once, in one call to PostgreSQL (hub_wallet_tips, migration 0010).

The call claims each command's Idempotency-Key, posts the tips set-based and saves each answer
with the money; a refusal is an answer like any other. It runs on a plain asyncpg connection,
inside the caller's transaction: nothing of it is visible, published or enqueued before that
commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.answers import Answer, answer_of
from ledger.idempotency import transfer_reference
from ledger.money import Money


@dataclass(frozen=True, slots=True)
class TipCommand:
    fan_id: str  # the caller
    key: str  # their Idempotency-Key
    fingerprint: str  # of the request (ledger.idempotency.request_fingerprint)
    creator_id: str
    amount: Money
    fee_bps: int
    message: str | None


# A prepared statement per connection (asyncpg caches it): the arrays are the commands.
_CALL = """
SELECT ord, status, body, replayed, refusal, events FROM hub_wallet_tips(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
    $7::integer[], $8::text[], $9::text[])
"""


async def post_wallet_tips(connection: Any, commands: Sequence[TipCommand]) -> list[Answer]:
    """Post `commands` in the connection's open transaction, in order, and answer each.

    Each tip moves its amount from the fan's wallet to the creator's earnings and the platform
    fee, with tip.received, tip.sent and both balance.updated events, exactly as
    ledger.tips.send_tip does.
    """
    rows = await connection.fetch(
        _CALL,
        [c.fan_id for c in commands],
        [c.key for c in commands],
        [c.fingerprint for c in commands],
        [c.creator_id for c in commands],
        [c.amount.amount for c in commands],
        [c.amount.currency for c in commands],
        [c.fee_bps for c in commands],
        [c.message for c in commands],
        [transfer_reference("tip", c.fan_id, c.key) for c in commands],
    )
    return [answer_of(row) for row in rows]
