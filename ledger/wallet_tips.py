"""Wallet tips, many at once, in one call to PostgreSQL (hub_wallet_tips, migration 0010).

The call claims each command's Idempotency-Key, posts the tips set-based and saves each answer
with the money; a refusal is an answer like any other. It runs on a plain asyncpg connection,
inside the caller's transaction: nothing of it is visible, published or enqueued before that
commits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.errors import IdempotencyInFlight, IdempotencyKeyReused
from ledger.events import Event
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


@dataclass(frozen=True, slots=True)
class TipAnswer:
    """How the command's request is answered: its status and JSON body, as saved under its key
    (`replayed` when an earlier request saved them), and the events it wrote. A key still in
    flight or used for another request is `error` instead: nothing was saved or posted."""

    status: int
    body: str
    replayed: bool = False
    events: tuple[Event, ...] = ()
    error: IdempotencyInFlight | IdempotencyKeyReused | None = None

    @property
    def transfer_id(self) -> int | None:
        """The tip's transfer, when this answer posted one."""
        for event in self.events:
            if event.type == "tip.received":
                return int(event.data["tip_id"])
        return None


# A prepared statement per connection (asyncpg caches it): the arrays are the commands.
_CALL = """
SELECT ord, status, body, replayed, refusal, events FROM hub_wallet_tips(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[],
    $7::integer[], $8::text[], $9::text[])
"""


async def post_wallet_tips(connection: Any, commands: Sequence[TipCommand]) -> list[TipAnswer]:
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
    return [_answer(row) for row in rows]


def _answer(row: Any) -> TipAnswer:
    if row["refusal"] == "in_flight":
        error: IdempotencyInFlight | IdempotencyKeyReused = IdempotencyInFlight(
            "a request with this Idempotency-Key is still in progress"
        )
        return TipAnswer(409, "", error=error)
    if row["refusal"] == "key_reused":
        error = IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request", param="Idempotency-Key"
        )
        return TipAnswer(422, "", error=error)
    return TipAnswer(
        status=row["status"],
        body=row["body"],
        replayed=row["replayed"],
        events=tuple(event_from_json(e) for e in json.loads(row["events"] or "[]")),
    )


def event_from_json(e: dict[str, Any]) -> Event:
    """An event as the batch functions return it (jsonb_build_object of the events row)."""
    return Event(
        id=e["id"],
        user_id=e["user_id"],
        seq=e["seq"],
        type=e["type"],
        occurred_at=datetime.fromisoformat(e["occurred_at"]).astimezone(UTC),
        data=e["data"],
    )
