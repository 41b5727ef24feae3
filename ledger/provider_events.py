"""Payment providers in the ledger's terms: what we ask of them (the Provider interface and its
requests, implemented by the HTTP adapters in providers) and what they tell us (ProviderEvent).
Types only: nothing here speaks HTTP."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


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


class BadSignature(Exception):
    """The webhook's signature (or timestamp) does not verify: answer 401, store nothing."""


class MalformedPayload(Exception):
    """The signature verified but the body is not the JSON we expect: answer 400, store it."""


class ProviderError(Exception):
    """The provider's API refused or failed; the message is safe to show (no secrets)."""


@dataclass(frozen=True, slots=True)
class CheckoutRequest:
    reference: str  # ours, unique; the provider echoes it back in webhooks
    amount: int  # minor units
    currency: str
    email: str  # Paystack requires one; we pass a placeholder derived from the user id
    callback_url: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Checkout:
    provider_ref: str  # the provider's id for this payment (Paystack access code, Stripe session)
    checkout_url: str


@dataclass(frozen=True, slots=True)
class TransferRequest:
    reference: str  # ours (the payout's)
    amount: int
    currency: str
    recipient: str  # the creator's id; adapters map it to the provider's recipient
    reason: str = "Hub payout"


@dataclass(frozen=True, slots=True)
class RefundRequest:
    reference: str  # ours (the refund's)
    payment_reference: str  # ours (the refunded payment's)
    provider_payment_ref: str | None
    amount: int
    currency: str


class Provider(Protocol):
    name: str

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Raise BadSignature unless `body` (raw bytes) is signed by this provider."""

    def parse(self, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
        """The verified body as a ProviderEvent; raise MalformedPayload if it is not one."""

    async def initialize(self, request: CheckoutRequest) -> Checkout: ...

    async def transfer(self, request: TransferRequest) -> str:
        """Start a payout; return the provider's transfer id. The outcome comes by webhook."""

    async def refund(self, request: RefundRequest) -> str:
        """Start a refund; return the provider's refund id."""
