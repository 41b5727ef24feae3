"""Stripe: Checkout Sessions, Connect transfers and refunds (form-encoded API), and its webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from ledger.provider_events import EventKind, ProviderEvent
from providers import call, currency, load_object, mapping, minor_units, need, text
from providers.base import (
    Checkout,
    CheckoutRequest,
    MalformedPayload,
    ProviderError,
    RefundRequest,
    TransferRequest,
)
from providers.signatures import verify_stripe

_SESSION_PAID = {"checkout.session.completed", "checkout.session.async_payment_succeeded"}
_SESSION_FAILED = {"checkout.session.async_payment_failed", "checkout.session.expired"}
_REFUND = {"refund.created", "refund.updated"}
_TRANSFERS = {
    "transfer.created": EventKind.TRANSFER_SUCCEEDED,
    "transfer.reversed": EventKind.TRANSFER_REVERSED,
    "transfer.failed": EventKind.TRANSFER_FAILED,  # legacy API versions; harmless to understand
}


class Stripe:
    name = "stripe"

    def __init__(
        self,
        secret_key: str,
        webhook_secret: str,
        base_url: str,
        http: httpx.AsyncClient,
        name: str | None = None,
    ) -> None:
        if name is not None:  # an app's own account: its stored name (ledger.app_providers)
            self.name = name
        self._secret = secret_key
        self._webhook_secret = webhook_secret
        self._base = base_url.rstrip("/")
        self._http = http

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        verify_stripe(headers, body, self._webhook_secret, now)

    def parse(self, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
        payload = load_object(body)
        event_id = need(text(payload.get("id")), "id")
        type_ = need(text(payload.get("type")), "type")
        data = payload.get("data")
        obj = data.get("object") if isinstance(data, dict) else None
        if not isinstance(obj, dict):
            raise MalformedPayload("data.object is not an object")
        kind, fields = _classify(type_, obj)
        return ProviderEvent(
            provider=self.name,
            event_id=event_id,
            type=type_,
            kind=kind,
            payload=payload,
            **fields,
        )

    async def initialize(self, request: CheckoutRequest) -> Checkout:
        form = {
            "mode": "payment",
            "line_items[0][price_data][currency]": request.currency.lower(),
            "line_items[0][price_data][unit_amount]": str(request.amount),
            "line_items[0][price_data][product_data][name]": "Hub top-up",
            "line_items[0][quantity]": "1",
            "client_reference_id": request.reference,
            "metadata[reference]": request.reference,
            # The PaymentIntent carries it too, so that payment_intent.* events can be matched.
            "payment_intent_data[metadata][reference]": request.reference,
        }
        if request.email:
            form["customer_email"] = request.email
        if request.callback_url:
            form["success_url"] = request.callback_url
            form["cancel_url"] = request.callback_url
        session = await self._post("/v1/checkout/sessions", form, f"checkout-{request.reference}")
        url = text(session.get("url"))
        if url is None:
            raise ProviderError("stripe: the checkout session has no url")
        return Checkout(provider_ref=_id(session), checkout_url=url)

    async def transfer(self, request: TransferRequest) -> str:
        form = {
            "amount": str(request.amount),
            "currency": request.currency.lower(),
            "destination": request.recipient,
            "description": request.reason,
            "metadata[reference]": request.reference,
        }
        return _id(await self._post("/v1/transfers", form, f"transfer-{request.reference}"))

    async def refund(self, request: RefundRequest) -> str:
        if not request.provider_payment_ref:
            raise ProviderError("stripe: a refund needs the payment's PaymentIntent id")
        form = {
            "payment_intent": request.provider_payment_ref,
            "amount": str(request.amount),
            "metadata[reference]": request.reference,
            "metadata[payment_reference]": request.payment_reference,
        }
        return _id(await self._post("/v1/refunds", form, f"refund-{request.reference}"))

    async def _post(self, path: str, form: Mapping[str, str], key: str) -> dict[str, Any]:
        # Our reference as Stripe's Idempotency-Key: a retried call cannot create a second object.
        return await call(
            self._http,
            self.name,
            self._secret,
            "POST",
            self._base + path,
            headers={"Authorization": f"Bearer {self._secret}", "Idempotency-Key": f"hub-{key}"},
            form=form,
        )


def _id(obj: Mapping[str, Any]) -> str:
    value = text(obj.get("id"))
    if value is None:
        raise ProviderError("stripe: the answer has no id")
    return value


def _expandable_id(value: object) -> str | None:
    # Stripe fields such as payment_intent are an id, or the object itself when expanded.
    return text(value) or text(mapping(value).get("id"))


def _classify(type_: str, obj: Mapping[str, Any]) -> tuple[EventKind, dict[str, Any]]:
    metadata = mapping(obj.get("metadata"))
    if type_ in _SESSION_PAID or type_ in _SESSION_FAILED:
        if type_ in _SESSION_PAID and obj.get("payment_status") != "paid":
            # Delayed methods complete unpaid; async_payment_succeeded follows when they clear.
            return EventKind.UNKNOWN, {}
        reference = text(obj.get("client_reference_id")) or text(metadata.get("reference"))
        paid = type_ in _SESSION_PAID
        amount = minor_units(obj.get("amount_total"))
        code = currency(obj.get("currency"))
        return (EventKind.PAYMENT_SUCCEEDED if paid else EventKind.PAYMENT_FAILED), {
            "reference": need(reference, "client_reference_id"),
            "amount": need(amount, "amount_total") if paid else amount,
            "currency": need(code, "currency") if paid else code,
            "provider_ref": _expandable_id(obj.get("payment_intent")) or text(obj.get("id")),
        }
    if type_ == "payment_intent.payment_failed":
        return EventKind.PAYMENT_FAILED, {
            "reference": need(text(metadata.get("reference")), "metadata.reference"),
            "amount": minor_units(obj.get("amount")),
            "currency": currency(obj.get("currency")),
            "provider_ref": text(obj.get("id")),
        }
    if type_ in _REFUND:
        if obj.get("status") != "succeeded":
            return EventKind.UNKNOWN, {}
        return EventKind.REFUND_PROCESSED, {
            "reference": text(metadata.get("reference")),
            "payment_reference": text(metadata.get("payment_reference")),
            "amount": need(minor_units(obj.get("amount")), "amount"),
            "currency": need(currency(obj.get("currency")), "currency"),
            "provider_ref": need(text(obj.get("id")), "id"),
        }
    if type_ in _TRANSFERS:
        return _TRANSFERS[type_], {
            "reference": need(text(metadata.get("reference")), "metadata.reference"),
            "amount": minor_units(obj.get("amount")),
            "currency": currency(obj.get("currency")),
            "provider_ref": text(obj.get("id")),
        }
    return EventKind.UNKNOWN, {}
