"""The one interface every payment provider adapter implements."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger.provider_events import ProviderEvent


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
