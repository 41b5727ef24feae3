"""Verified top-up webhooks, many at once, in one call to PostgreSQL (hub_webhook_topups,
migration 0012).

The call records each delivery in the inbox, matches its payment and credits the payer's wallet
exactly as ledger.settlement.apply_event does for a top-up, inside the caller's transaction;
each answer is data. A success for anything but a top-up is `deferred`: nothing was written for
it, and the caller applies it with apply_event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.answers import events_of
from ledger.db import BIGINT_MAX
from ledger.events import Event
from ledger.provider_events import EventKind, ProviderEvent


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified, parsed payment-success event and its body as the inbox keeps it."""

    event: ProviderEvent
    payload: str

    def __post_init__(self) -> None:
        if self.event.kind is not EventKind.PAYMENT_SUCCEEDED:
            raise ValueError("only payment successes are applied in batches")


def batchable(event: ProviderEvent) -> bool:
    """Whether `event` can join a batch: its amount fits a bigint and no text carries a NUL
    (PostgreSQL's text cannot). Any other is applied alone by apply_event, which records it
    (as a mismatch, mostly) without putting a batch's other deliveries at risk."""
    if event.amount is not None and not -BIGINT_MAX - 1 <= event.amount <= BIGINT_MAX:
        return False
    texts = (event.provider, event.event_id, event.type, event.reference, event.currency)
    return not any("\x00" in value for value in (*texts, event.provider_ref) if value)


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: str  # applied | duplicate | ignored | mismatch (as apply_event's Settled)
    detail: str | None = None
    events: tuple[Event, ...] = ()
    deferred: bool = False  # not a top-up: nothing written, apply it with apply_event


# A prepared statement per connection (asyncpg caches it): the arrays are the deliveries.
_CALL = """
SELECT ord, outcome, detail, deferred, events FROM hub_webhook_topups(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
    $8::text[])
"""


async def apply_topups(connection: Any, deliveries: Sequence[Delivery]) -> list[Applied]:
    """Apply `deliveries` in the connection's open transaction, in order, and answer each."""
    events = [d.event for d in deliveries]
    rows = await connection.fetch(
        _CALL,
        [e.provider for e in events],
        [e.event_id for e in events],
        [e.type for e in events],
        [e.reference for e in events],
        [e.amount for e in events],
        [e.currency for e in events],
        [e.provider_ref for e in events],
        [d.payload for d in deliveries],
    )
    return [
        Applied(
            outcome=row["outcome"] if not row["deferred"] else "deferred",
            detail=row["detail"],
            events=events_of(row["events"]),
            deferred=row["deferred"],
        )
        for row in rows
    ]
