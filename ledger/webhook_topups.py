"""Verified payment successes, many at once, in one call to PostgreSQL: top-ups
(hub_webhook_topups, migration 0012), and card tips and card purchases (hub_webhook_card_sales,
migration 0016).

Each call records each delivery in the inbox, matches its payment and credits the payer's
wallet, then (card sales) tips or buys from it, exactly as ledger.settlement.apply_event does,
inside the caller's transaction; each answer is data. A success a function does not handle is
`deferred`: nothing was written for it, and the caller hands it on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger.answers import events_of
from ledger.db import BIGINT_MAX
from ledger.events import Event
from ledger.provider_events import EventKind, ProviderEvent

# What a provider says of a payout, applied by hub_webhook_payout_outcomes.
PAYOUT_OUTCOMES = (
    EventKind.TRANSFER_SUCCEEDED,
    EventKind.TRANSFER_FAILED,
    EventKind.TRANSFER_REVERSED,
)
BATCHED = (EventKind.PAYMENT_SUCCEEDED, *PAYOUT_OUTCOMES)


@dataclass(frozen=True, slots=True)
class Delivery:
    """A verified, parsed payment-success event and its body as the inbox keeps it."""

    event: ProviderEvent
    payload: str

    def __post_init__(self) -> None:
        if self.event.kind not in BATCHED:
            raise ValueError(f"{self.event.kind} events are not applied in batches")


def batchable(event: ProviderEvent) -> bool:
    """Whether `event` can join a batch: its amount fits a bigint and no text carries a NUL
    (PostgreSQL's text cannot). Any other is applied alone by apply_event, which records it
    (as a mismatch, mostly) without putting a batch's other deliveries at risk."""
    if event.amount is not None and not -BIGINT_MAX - 1 <= event.amount <= BIGINT_MAX:
        return False
    if event.kind not in BATCHED:
        return False
    reason = _reason(event)
    if event.kind in PAYOUT_OUTCOMES and reason is not None and not isinstance(reason, str):
        return False  # settle_payout would store it as it is: apply_event's to refuse
    texts = (event.provider, event.event_id, event.type, event.reference, event.currency)
    return not any(
        "\x00" in value
        for value in (*texts, event.provider_ref, reason)
        if isinstance(value, str) and value
    )


def _reason(event: ProviderEvent) -> object:
    """The reason a provider gives for a payout's outcome (settle_payout's `reason`)."""
    return event.payload.get("reason") if isinstance(event.payload, dict) else None


@dataclass(frozen=True, slots=True)
class Applied:
    outcome: str  # applied | duplicate | ignored | mismatch (as apply_event's Settled)
    detail: str | None = None
    events: tuple[Event, ...] = ()
    deferred: bool = False  # not this function's: nothing written, hand it on


# Prepared statements per connection (asyncpg caches them): the arrays are the deliveries.
_CALL = """
SELECT ord, outcome, detail, deferred, events FROM {function}(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[],
    $8::text[])
"""
_TOPUPS = _CALL.format(function="hub_webhook_topups")
_CARD_SALES = _CALL.format(function="hub_webhook_card_sales")
_PAYOUT_OUTCOMES = """
SELECT ord, outcome, detail, events FROM hub_webhook_payout_outcomes(
    $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[],
    $8::text[], $9::text[])
"""


async def apply_topups(connection: Any, deliveries: Sequence[Delivery]) -> list[Applied]:
    """Apply the top-ups of `deliveries` in the connection's open transaction, in order, and
    answer each; any other payment's success is deferred."""
    return await _apply(connection, _TOPUPS, deliveries)


async def apply_card_sales(connection: Any, deliveries: Sequence[Delivery]) -> list[Applied]:
    """Apply the card tips and card purchases of `deliveries` likewise: the credit, then the
    sale from the wallet (or, when the sale cannot happen, the credit and why); any other
    payment's success is deferred."""
    return await _apply(connection, _CARD_SALES, deliveries)


async def apply_payout_outcomes(connection: Any, deliveries: Sequence[Delivery]) -> list[Applied]:
    """Apply payout outcomes (transfer succeeded, failed, reversed) as apply_event does, in the
    connection's open transaction, in order, and answer each."""
    events = [d.event for d in deliveries]
    rows = await connection.fetch(
        _PAYOUT_OUTCOMES,
        [e.provider for e in events],
        [e.event_id for e in events],
        [e.type for e in events],
        [e.kind.value for e in events],
        [e.reference for e in events],
        [repr(e.reference) for e in events],  # as settlement words an unknown payout
        [e.amount for e in events],
        [str(_reason(e) or "") or None for e in events],  # `reason or outcome`, as there
        [d.payload for d in deliveries],
    )
    return [
        Applied(outcome=row["outcome"], detail=row["detail"], events=events_of(row["events"]))
        for row in rows
    ]


async def _apply(connection: Any, call: str, deliveries: Sequence[Delivery]) -> list[Applied]:
    events = [d.event for d in deliveries]
    rows = await connection.fetch(
        call,
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
