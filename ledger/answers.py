"""What a batch function (hub_wallet_tips, hub_wallet_purchases) answers for each command.

Each answer is how the command's request is answered: its status and JSON body, as saved under
its Idempotency-Key (`replayed` when an earlier request saved them), and the events it wrote. A
key still in flight or used for another request is `error` instead: nothing was saved or posted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ledger.errors import IdempotencyInFlight, IdempotencyKeyReused
from ledger.events import Event


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: str
    replayed: bool = False
    events: tuple[Event, ...] = ()
    error: IdempotencyInFlight | IdempotencyKeyReused | None = None


def answer_of(row: Any) -> Answer:
    """A row (status, body, replayed, refusal, events) of a batch function, as an Answer."""
    if row["refusal"] == "in_flight":
        error: IdempotencyInFlight | IdempotencyKeyReused = IdempotencyInFlight(
            "a request with this Idempotency-Key is still in progress"
        )
        return Answer(409, "", error=error)
    if row["refusal"] == "key_reused":
        error = IdempotencyKeyReused(
            "this Idempotency-Key was used with a different request", param="Idempotency-Key"
        )
        return Answer(422, "", error=error)
    return Answer(
        status=row["status"],
        body=row["body"],
        replayed=row["replayed"],
        events=events_of(row["events"]),
    )


def events_of(document: str | None) -> tuple[Event, ...]:
    """The events a batch function returns, a JSON array of jsonb_build_object'ed event rows."""
    return tuple(event_from_json(e) for e in json.loads(document or "[]"))


def event_from_json(e: dict[str, Any]) -> Event:
    return Event(
        id=e["id"],
        user_id=e["user_id"],
        seq=e["seq"],
        type=e["type"],
        occurred_at=datetime.fromisoformat(e["occurred_at"]).astimezone(UTC),
        data=e["data"],
    )
