"""Paystack: its transaction, transfer and refund API, and its webhooks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from ledger.provider_events import EventKind, ProviderEvent
from providers import body_digest, call, currency, load_object, mapping, minor_units, need, text
from providers.base import (
    Checkout,
    CheckoutRequest,
    MalformedPayload,
    ProviderError,
    RefundRequest,
    TransferRequest,
)
from providers.signatures import verify_paystack

# Paystack's refund API has no reference or metadata field; merchant_note is the one free text it
# echoes in refund webhooks, so our refund reference travels there behind this marker.
REFUND_NOTE_PREFIX = "hub-refund:"

_KINDS = {
    "charge.success": EventKind.PAYMENT_SUCCEEDED,
    "charge.failed": EventKind.PAYMENT_FAILED,
    "refund.processed": EventKind.REFUND_PROCESSED,
    "transfer.success": EventKind.TRANSFER_SUCCEEDED,
    "transfer.failed": EventKind.TRANSFER_FAILED,
    "transfer.reversed": EventKind.TRANSFER_REVERSED,
}
_TRANSFER_KINDS = {
    EventKind.TRANSFER_SUCCEEDED,
    EventKind.TRANSFER_FAILED,
    EventKind.TRANSFER_REVERSED,
}


class Paystack:
    name = "paystack"

    def __init__(
        self, secret_key: str, base_url: str, http: httpx.AsyncClient, name: str | None = None
    ) -> None:
        if name is not None:  # an app's own account: its stored name (ledger.app_providers)
            self.name = name
        self._secret = secret_key
        self._base = base_url.rstrip("/")
        self._http = http

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        # Paystack signs no timestamp, so there is no freshness to check: dedupe covers replays.
        verify_paystack(headers, body, self._secret)

    def parse(self, headers: Mapping[str, str], body: bytes) -> ProviderEvent:
        payload = load_object(body)
        event = need(text(payload.get("event")), "event")
        data = payload.get("data")
        kind = _KINDS.get(event, EventKind.UNKNOWN)
        if not isinstance(data, dict):
            if kind is not EventKind.UNKNOWN:
                raise MalformedPayload("data is not an object")
            data = {}
        # Paystack events carry no id of their own: the event name and the object's id stand in.
        subject = text(data.get("id")) or text(data.get("reference")) or body_digest(body)
        return ProviderEvent(
            provider=self.name,
            event_id=f"{event}:{subject}",
            type=event,
            kind=kind,
            payload=payload,
            **_fields(kind, data),
        )

    async def initialize(self, request: CheckoutRequest) -> Checkout:
        body: dict[str, Any] = {
            "email": request.email,
            "amount": request.amount,
            "currency": request.currency,
            "reference": request.reference,
            "metadata": dict(request.metadata),
        }
        if request.callback_url:
            body["callback_url"] = request.callback_url
        data = await self._post("/transaction/initialize", body)
        url = text(data.get("authorization_url"))
        if url is None:
            raise ProviderError("paystack: initialize answered without authorization_url")
        return Checkout(
            provider_ref=text(data.get("access_code")) or request.reference, checkout_url=url
        )

    async def transfer(self, request: TransferRequest) -> str:
        recipient = request.recipient
        if not recipient.startswith("RCP_"):  # a creator id, not yet a Paystack recipient code
            created = await self._post(
                "/transferrecipient",
                {
                    "type": "nuban",
                    "name": request.recipient,
                    "account_number": "0000000000",  # placeholder until creators' banks exist
                    "bank_code": "000",
                    "currency": request.currency,
                    "metadata": {"creator": request.recipient},
                },
            )
            recipient = _field(created, "recipient_code")
        data = await self._post(
            "/transfer",
            {
                "source": "balance",
                "amount": request.amount,
                "recipient": recipient,
                "reference": request.reference,
                "reason": request.reason,
                "currency": request.currency,
            },
        )
        return _field(data, "transfer_code")

    async def refund(self, request: RefundRequest) -> str:
        data = await self._post(
            "/refund",
            {
                "transaction": request.payment_reference,
                "amount": request.amount,
                "currency": request.currency,
                "merchant_note": REFUND_NOTE_PREFIX + request.reference,
            },
        )
        return _field(data, "id")

    async def verify_transaction(self, reference: str) -> dict[str, Any]:
        """Paystack's own record of a transaction (`status` is "success", "failed", ...)."""
        return await self._request("GET", f"/transaction/verify/{quote(reference, safe='')}")

    async def _post(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self._request("POST", path, body)

    async def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        answer = await call(
            self._http,
            self.name,
            self._secret,
            method,
            self._base + path,
            headers={"Authorization": f"Bearer {self._secret}"},
            json_body=body,
        )
        data = answer.get("data")
        if answer.get("status") is not True or not isinstance(data, dict):
            raise ProviderError(f"paystack: {method} {path} answered status false")
        return data


def _field(data: Mapping[str, Any], name: str) -> str:
    value = text(data.get(name))
    if value is None:
        raise ProviderError(f"paystack: the answer has no {name}")
    return value


def _refund_reference(data: Mapping[str, Any]) -> str | None:
    metadata = mapping(data.get("metadata"))
    found = text(metadata.get("refund_reference")) or text(metadata.get("reference"))
    note = text(data.get("merchant_note"))
    if found is None and note is not None and note.startswith(REFUND_NOTE_PREFIX):
        found = note.removeprefix(REFUND_NOTE_PREFIX) or None
    return found


def _fields(kind: EventKind, data: Mapping[str, Any]) -> dict[str, Any]:
    if kind is EventKind.PAYMENT_SUCCEEDED:
        return {
            "reference": need(text(data.get("reference")), "data.reference"),
            "amount": need(minor_units(data.get("amount")), "data.amount"),
            "currency": need(currency(data.get("currency")), "data.currency"),
            "provider_ref": text(data.get("id")),
        }
    if kind is EventKind.PAYMENT_FAILED:
        return {
            "reference": need(text(data.get("reference")), "data.reference"),
            "amount": minor_units(data.get("amount")),
            "currency": currency(data.get("currency")),
            "provider_ref": text(data.get("id")),
        }
    if kind is EventKind.REFUND_PROCESSED:
        # Webhooks name the refunded transaction by reference; the refund API's answer nests it.
        transaction = mapping(data.get("transaction"))
        paid = text(data.get("transaction_reference")) or text(transaction.get("reference"))
        return {
            "reference": _refund_reference(data),
            "payment_reference": need(paid, "data.transaction_reference"),
            "amount": need(minor_units(data.get("amount")), "data.amount"),
            "currency": need(currency(data.get("currency")), "data.currency"),
            "provider_ref": text(data.get("id")),
        }
    if kind in _TRANSFER_KINDS:
        return {
            "reference": need(text(data.get("reference")), "data.reference"),
            "amount": minor_units(data.get("amount")),
            "currency": currency(data.get("currency")),
            "provider_ref": text(data.get("transfer_code")),
        }
    return {}
