"""What a provider told us, in the ledger's terms: the parsed, verified webhook event."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    PAYMENT_SUCCEEDED = "payment.succeeded"
    PAYMENT_FAILED = "payment.failed"
    REFUND_PROCESSED = "refund.processed"
    TRANSFER_SUCCEEDED = "transfer.succeeded"
    TRANSFER_FAILED = "transfer.failed"
    TRANSFER_REVERSED = "transfer.reversed"
    UNKNOWN = "unknown"  # stored and acknowledged, never acted on


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    provider: str  # "paystack", "stripe", or a Standard Webhooks sender name such as "sandbox"
    event_id: str  # unique per provider: the inbox dedupes on (provider, event_id)
    type: str  # the provider's own event type, e.g. "charge.success"
    kind: EventKind
    reference: str | None = None  # our reference: a payment's, a payout's or a refund's
    amount: int | None = None  # minor units
    currency: str | None = None  # ISO 4217, upper case
    provider_ref: str | None = None  # the provider's id for the payment, transfer or refund
    payment_reference: str | None = None  # for refunds: the reference of the refunded payment
    payload: dict[str, Any] = field(default_factory=dict)
