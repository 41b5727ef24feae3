"""The one interface every payment provider adapter implements (defined beside the ledger, so
that workers can call providers without importing the hub)."""

from ledger.provider_events import (
    BadSignature,
    Checkout,
    CheckoutRequest,
    MalformedPayload,
    Provider,
    ProviderError,
    ProviderEvent,
    RefundRequest,
    TransferRequest,
)

__all__ = [
    "BadSignature",
    "Checkout",
    "CheckoutRequest",
    "MalformedPayload",
    "Provider",
    "ProviderError",
    "ProviderEvent",
    "RefundRequest",
    "TransferRequest",
]
