"""A generic Standard Webhooks sender (standardwebhooks.com) whose events use our own kinds; the
one named "sandbox" also has an API, the sandbox's, for checkouts, transfers and refunds."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ledger.provider_events import EventKind, ProviderEvent
from providers import call, currency, load_object, minor_units, need, text
from providers.base import (
    Checkout,
    CheckoutRequest,
    MalformedPayload,
    ProviderError,
    RefundRequest,
    TransferRequest,
)
from providers.signatures import standard_key, verify_standard

_KNOWN = {kind.value: kind for kind in EventKind if kind is not EventKind.UNKNOWN}
_NEEDS_MONEY = {EventKind.PAYMENT_SUCCEEDED, EventKind.REFUND_PROCESSED}


class StandardWebhooks:
    def __init__(
        self, name: str, secret: str, api_base_url: str | None, http: httpx.AsyncClient
    ) -> None:
        standard_key(secret)  # a malformed secret fails at start, not on the first webhook
        self.name = name
        self._secret = secret
        self._base = api_base_url.rstrip("/") if api_base_url else None
        self._http = http

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        verify_standard(headers, body, self._secret, now)

    def parse(self, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
        # The webhook-id header is the event id: Standard Webhooks keeps it across retries.
        event_id = next((v for k, v in headers.items() if k.lower() == "webhook-id"), None)
        payload = load_object(body)
        type_ = need(text(payload.get("type")), "type")
        kind = _KNOWN.get(type_, EventKind.UNKNOWN)
        data = payload.get("data")
        fields: dict[str, Any] = {}
        if kind is not EventKind.UNKNOWN:
            if not isinstance(data, dict):
                raise MalformedPayload("data is not an object")
            amount = minor_units(data.get("amount"))
            code = currency(data.get("currency"))
            fields = {
                "reference": need(text(data.get("reference")), "data.reference"),
                "amount": need(amount, "data.amount") if kind in _NEEDS_MONEY else amount,
                "currency": need(code, "data.currency") if kind in _NEEDS_MONEY else code,
                "provider_ref": text(data.get("id")),
                "payment_reference": text(data.get("payment_reference")),
            }
        return ProviderEvent(
            provider=self.name,
            event_id=need(event_id or None, "webhook-id header"),
            type=type_,
            kind=kind,
            payload=payload,
            **fields,
        )

    async def initialize(self, request: CheckoutRequest) -> Checkout:
        answer = await self._post(
            "/sandbox/payments",
            {
                "reference": request.reference,
                "amount": request.amount,
                "currency": request.currency,
                "email": request.email,
                "callback_url": request.callback_url,
                "metadata": dict(request.metadata),
            },
        )
        return Checkout(
            provider_ref=self._field(answer, "id"), checkout_url=self._field(answer, "checkout_url")
        )

    async def transfer(self, request: TransferRequest) -> str:
        answer = await self._post(
            "/sandbox/transfers",
            {
                "reference": request.reference,
                "amount": request.amount,
                "currency": request.currency,
                "recipient": request.recipient,
                "reason": request.reason,
            },
        )
        return self._field(answer, "id")

    async def refund(self, request: RefundRequest) -> str:
        answer = await self._post(
            "/sandbox/refunds",
            {
                "reference": request.reference,
                "payment_reference": request.payment_reference,
                "provider_payment_ref": request.provider_payment_ref,
                "amount": request.amount,
                "currency": request.currency,
            },
        )
        return self._field(answer, "id")

    async def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        if self._base is None:
            raise ProviderError(f"sender {self.name} only sends webhooks")
        return await call(
            self._http, self.name, self._secret, "POST", self._base + path, json_body=body
        )

    def _field(self, answer: Mapping[str, Any], name: str) -> str:
        value = text(answer.get(name))
        if value is None:
            raise ProviderError(f"{self.name}: the answer has no {name}")
        return value
