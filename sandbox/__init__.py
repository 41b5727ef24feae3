"""The sandbox provider's state (in memory) and its webhooks, built in the shapes of Paystack,
Stripe and a Standard Webhooks sender, signed their ways. Its HTTP face is sandbox.app."""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx

from providers.signatures import paystack_headers, standard_headers, stripe_headers

Flavour = Literal["paystack", "stripe", "sandbox"]
STRIPE_API_VERSION = "2024-06-20"
PAYMENT_OUTCOMES = ("succeeded", "failed")
TRANSFER_OUTCOMES = ("succeeded", "failed", "reversed")
REFUND_OUTCOMES = ("succeeded", "failed")


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    paystack_secret_key: str
    stripe_secret_key: str
    stripe_webhook_secret: str
    sandbox_webhook_secret: str  # whsec_...: signs as the Standard Webhooks sender "sandbox"
    hub_url: str  # webhooks go to {hub_url}/webhooks/paystack|stripe|sandbox
    public_url: str  # this sandbox's own base URL, for checkout links
    auto_complete: bool = False  # transfers and refunds succeed by themselves (for `hub dev`)
    auto_complete_delay: float = 0.2


@dataclass
class Payment:
    id: str  # the checkout's: Paystack access code, Stripe session id, sandbox payment id
    flavour: Flavour
    reference: str
    amount: int
    currency: str
    email: str | None
    success_url: str | None
    cancel_url: str | None
    metadata: Any
    number: int  # Paystack's numeric transaction id
    intent: str  # Stripe's PaymentIntent id
    created: int
    status: str = "pending"  # pending | succeeded | failed


@dataclass
class Transfer:
    id: str  # Paystack transfer code, Stripe tr_..., sandbox id
    number: int
    flavour: Flavour
    reference: str
    amount: int
    currency: str
    recipient: str
    reason: str | None
    metadata: dict[str, str]
    created: int
    status: str = "pending"


@dataclass
class Refund:
    id: str
    flavour: Flavour
    reference: str | None  # ours; Paystack's API has no field for it but the merchant note
    payment: Payment
    amount: int
    metadata: dict[str, str]
    note: str | None
    created: int
    status: str = "pending"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook, built and signed once: every copy sends these same bytes."""

    flavour: Flavour
    event_id: str
    type: str
    body: bytes
    headers: dict[str, str]


def iso_time(seconds: float) -> str:
    return (
        datetime.fromtimestamp(seconds, UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def new_id(prefix: str, size: int = 12) -> str:
    return prefix + secrets.token_hex(size)


@dataclass
class Sandbox:
    config: SandboxConfig
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10.0))
    payments: dict[str, Payment] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    recipients: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    replies: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(4_000_001))
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # -- lookups: tests and the hub know our references, the checkout page knows its id --

    def payment(self, key: str) -> Payment | None:
        found = self.payments.get(key)
        return found or next(
            (p for p in reversed(self.payments.values()) if key in (p.reference, p.intent)), None
        )

    def payment_of(self, flavour: Flavour, key: str) -> Payment | None:
        found = self.payment(key)
        if found is None:  # Paystack also names a transaction by its numeric id
            found = next((p for p in self.payments.values() if str(p.number) == key), None)
        return found if found is not None and found.flavour == flavour else None

    def transfer(self, key: str) -> Transfer | None:
        return self.transfers.get(key) or next(
            (t for t in reversed(self.transfers.values()) if t.reference == key), None
        )

    def refund(self, key: str) -> Refund | None:
        return self.refunds.get(key) or next(
            (r for r in reversed(self.refunds.values()) if r.reference == key), None
        )

    def refundable(self, payment: Payment) -> int:
        taken = sum(
            r.amount for r in self.refunds.values() if r.payment is payment and r.status != "failed"
        )
        return payment.amount - taken

    # -- webhooks, in each provider's own shape --

    def payment_delivery(self, p: Payment, outcome: str, amount: int | None) -> Delivery:
        ok = outcome == "succeeded"
        amount = p.amount if amount is None else amount
        if p.flavour == "paystack":
            data = self.paystack_transaction(p, "success" if ok else "failed", amount)
            return self._wrap("paystack", "charge.success" if ok else "charge.failed", data)
        if p.flavour == "stripe":
            session = self.session_object(p)
            session.update(
                status="complete",
                payment_status="paid" if ok else "unpaid",
                amount_total=amount,
                amount_subtotal=amount,
                url=None,
            )
            kind = "completed" if ok else "async_payment_failed"
            return self._wrap("stripe", f"checkout.session.{kind}", session)
        data = {"id": p.id, "reference": p.reference, "amount": amount, "currency": p.currency}
        return self._wrap("sandbox", "payment.succeeded" if ok else "payment.failed", data)

    def transfer_delivery(self, t: Transfer, outcome: str) -> Delivery:
        if t.flavour == "paystack":
            status = {"succeeded": "success", "failed": "failed", "reversed": "reversed"}[outcome]
            return self._wrap("paystack", f"transfer.{status}", self.paystack_transfer(t, status))
        if t.flavour == "stripe":
            obj = self.stripe_transfer(t)
            if outcome == "reversed":
                obj.update(reversed=True, amount_reversed=t.amount)
            # Stripe confirms a transfer with transfer.created; transfer.failed is its legacy name
            # for a failure, which current API versions report as a reversal.
            kind = {"succeeded": "created", "failed": "failed", "reversed": "reversed"}[outcome]
            return self._wrap("stripe", f"transfer.{kind}", obj)
        data = {
            "id": t.id,
            "reference": t.reference,
            "amount": t.amount,
            "currency": t.currency,
            "recipient": t.recipient,
        }
        return self._wrap("sandbox", f"transfer.{outcome}", data)

    def refund_delivery(self, r: Refund, outcome: str) -> Delivery:
        ok = outcome == "succeeded"
        if r.flavour == "paystack":
            data = self.paystack_refund_event(r, "processed" if ok else "failed")
            return self._wrap("paystack", "refund.processed" if ok else "refund.failed", data)
        if r.flavour == "stripe":
            obj = self.stripe_refund(r, "succeeded" if ok else "failed")
            return self._wrap("stripe", "refund.updated", obj)
        data = {
            "id": r.id,
            "reference": r.reference,
            "payment_reference": r.payment.reference,
            "amount": r.amount,
            "currency": r.payment.currency,
        }
        return self._wrap("sandbox", "refund.processed" if ok else "refund.failed", data)

    def _wrap(self, flavour: Flavour, type_: str, obj: dict[str, Any]) -> Delivery:
        now = int(time.time())
        if flavour == "paystack":
            body = json.dumps({"event": type_, "data": obj}).encode()
            headers = paystack_headers(body, self.config.paystack_secret_key)
            # Paystack events have no id: the hub derives one from the event name and object id.
            return Delivery(flavour, f"{type_}:{obj['id']}", type_, body, headers)
        if flavour == "stripe":
            event_id = new_id("evt_")
            event = {
                "id": event_id,
                "object": "event",
                "api_version": STRIPE_API_VERSION,
                "created": now,
                "data": {"object": obj},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "type": type_,
            }
            body = json.dumps(event).encode()
            headers = stripe_headers(body, self.config.stripe_webhook_secret, now)
            return Delivery(flavour, event_id, type_, body, headers)
        msg_id = new_id("msg_")
        body = json.dumps({"type": type_, "timestamp": iso_time(now), "data": obj}).encode()
        headers = standard_headers(msg_id, now, body, self.config.sandbox_webhook_secret)
        return Delivery(flavour, msg_id, type_, body, headers)

    async def deliver(
        self, deliveries: list[Delivery], copies: int = 1, concurrent: bool = False
    ) -> list[int | None]:
        """Send each delivery `copies` times, the deliveries one after another, in order."""
        statuses: list[int | None] = []
        for delivery in deliveries:
            if concurrent:
                sent = [self._send(delivery) for _ in range(copies)]
                statuses.extend(await asyncio.gather(*sent))
            else:
                for _ in range(copies):
                    statuses.append(await self._send(delivery))
        return statuses

    async def _send(self, delivery: Delivery) -> int | None:
        url = f"{self.config.hub_url.rstrip('/')}/webhooks/{delivery.flavour}"
        status: int | None = None
        error: str | None = None
        try:
            response = await self.http.post(url, content=delivery.body, headers=delivery.headers)
            status = response.status_code
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        self.log.append(
            {
                "provider": delivery.flavour,
                "url": url,
                "event_id": delivery.event_id,
                "type": delivery.type,
                "status": status,
                "error": error,
                "headers": delivery.headers,
                "body": delivery.body.decode(),
            }
        )
        return status

    def later(self, work: Coroutine[Any, Any, Any]) -> None:
        async def run() -> None:
            await asyncio.sleep(self.config.auto_complete_delay)
            await work

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.http.aclose()

    # -- provider objects, as their APIs and webhooks show them --

    def checkout_url(self, p: Payment) -> str:
        return f"{self.config.public_url.rstrip('/')}/checkout/{p.id}"

    def paystack_transaction(self, p: Payment, status: str, amount: int) -> dict[str, Any]:
        return {
            "id": p.number,
            "domain": "test",
            "status": status,
            "reference": p.reference,
            "amount": amount,
            "message": None,
            "gateway_response": {"success": "Successful", "failed": "Declined"}.get(status),
            "paid_at": iso_time(time.time()) if status == "success" else None,
            "created_at": iso_time(p.created),
            "channel": "card",
            "currency": p.currency,
            "ip_address": "127.0.0.1",
            "metadata": p.metadata,
            "fees": None,
            "customer": {"email": p.email},
            "requested_amount": p.amount,
        }

    def session_object(self, p: Payment) -> dict[str, Any]:
        return {
            "id": p.id,
            "object": "checkout.session",
            "mode": "payment",
            "status": "open",
            "payment_status": "unpaid",
            "amount_total": p.amount,
            "amount_subtotal": p.amount,
            "currency": p.currency.lower(),
            "client_reference_id": p.reference,
            "customer_email": p.email,
            "metadata": p.metadata,
            "payment_intent": p.intent,
            "success_url": p.success_url,
            "cancel_url": p.cancel_url,
            "url": self.checkout_url(p),
            "created": p.created,
            "expires_at": p.created + 24 * 3600,
            "livemode": False,
        }

    def paystack_transfer(self, t: Transfer, status: str) -> dict[str, Any]:
        recipient = next(
            (r for r in self.recipients.values() if r["recipient_code"] == t.recipient), {}
        )
        return {
            "id": t.number,
            "domain": "test",
            "amount": t.amount,
            "currency": t.currency,
            "reference": t.reference,
            "source": "balance",
            "reason": t.reason,
            "status": status,
            "failures": None,
            "transfer_code": t.id,
            "transferred_at": iso_time(time.time()) if status == "success" else None,
            "recipient": recipient,
            "created_at": iso_time(t.created),
            "updated_at": iso_time(time.time()),
        }

    def stripe_transfer(self, t: Transfer) -> dict[str, Any]:
        return {
            "id": t.id,
            "object": "transfer",
            "amount": t.amount,
            "amount_reversed": 0,
            "currency": t.currency.lower(),
            "description": t.reason,
            "destination": t.recipient,
            "metadata": t.metadata,
            "reversed": False,
            "created": t.created,
            "livemode": False,
        }

    def paystack_refund_event(self, r: Refund, status: str) -> dict[str, Any]:
        # As Paystack's refund webhooks show it: the amount as a digit string, the refunded
        # transaction by reference, the refund's id as a string.
        return {
            "id": r.id,
            "status": status,
            "transaction_reference": r.payment.reference,
            "refund_reference": new_id("RRN", 6) if status == "processed" else None,
            "amount": str(r.amount),
            "currency": r.payment.currency,
            "processor": "sandbox",
            "customer": {"email": r.payment.email},
            "integration": 100001,
            "domain": "test",
            "merchant_note": r.note,
            "customer_note": None,
        }

    def stripe_refund(self, r: Refund, status: str) -> dict[str, Any]:
        return {
            "id": r.id,
            "object": "refund",
            "amount": r.amount,
            "currency": r.payment.currency.lower(),
            "payment_intent": r.payment.intent,
            "charge": "ch_" + r.payment.intent.removeprefix("pi_"),
            "status": status,
            "failure_reason": "unknown" if status == "failed" else None,
            "metadata": r.metadata,
            "reason": None,
            "created": r.created,
        }

    # -- creation, shared by the three APIs --

    def new_payment(
        self,
        flavour: Flavour,
        reference: str,
        amount: int,
        code: str,
        *,
        email: str | None = None,
        success_url: str | None = None,
        cancel_url: str | None = None,
        metadata: Any = None,
    ) -> Payment:
        prefix = {"paystack": "", "stripe": "cs_test_", "sandbox": "sbx_pay_"}[flavour]
        payment = Payment(
            id=prefix + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y"),
            flavour=flavour,
            reference=reference,
            amount=amount,
            currency=code,
            email=email,
            success_url=success_url,
            cancel_url=cancel_url,
            metadata=metadata if metadata is not None else {},
            number=next(self.numbers),
            intent=new_id("pi_"),
            created=int(time.time()),
        )
        self.payments[payment.id] = payment
        return payment

    def new_transfer(
        self,
        flavour: Flavour,
        id_: str,
        reference: str,
        amount: int,
        code: str,
        recipient: str,
        reason: str | None,
        metadata: dict[str, str] | None = None,
    ) -> Transfer:
        transfer = Transfer(
            id=id_,
            number=next(self.numbers),
            flavour=flavour,
            reference=reference,
            amount=amount,
            currency=code,
            recipient=recipient,
            reason=reason,
            metadata=metadata or {},
            created=int(time.time()),
        )
        self.transfers[transfer.id] = transfer
        if self.config.auto_complete:
            self.later(self.complete_transfer(transfer, ["succeeded"]))
        return transfer

    def new_refund(
        self,
        flavour: Flavour,
        id_: str,
        reference: str | None,
        payment: Payment,
        amount: int,
        metadata: dict[str, str] | None = None,
        note: str | None = None,
    ) -> Refund:
        refund = Refund(
            id=id_,
            flavour=flavour,
            reference=reference,
            payment=payment,
            amount=amount,
            metadata=metadata or {},
            note=note,
            created=int(time.time()),
        )
        self.refunds[refund.id] = refund
        if self.config.auto_complete:
            self.later(self.complete_refund(refund, ["succeeded"]))
        return refund

    async def complete_payment(
        self,
        p: Payment,
        outcomes: list[str],
        copies: int = 1,
        concurrent: bool = False,
        amount: int | None = None,
    ) -> tuple[list[Delivery], list[int | None]]:
        p.status = outcomes[-1]
        deliveries = [self.payment_delivery(p, outcome, amount) for outcome in outcomes]
        return deliveries, await self.deliver(deliveries, copies, concurrent)

    async def complete_transfer(
        self, t: Transfer, outcomes: list[str], copies: int = 1, concurrent: bool = False
    ) -> tuple[list[Delivery], list[int | None]]:
        t.status = outcomes[-1]
        deliveries = [self.transfer_delivery(t, outcome) for outcome in outcomes]
        return deliveries, await self.deliver(deliveries, copies, concurrent)

    async def complete_refund(
        self, r: Refund, outcomes: list[str], copies: int = 1, concurrent: bool = False
    ) -> tuple[list[Delivery], list[int | None]]:
        r.status = outcomes[-1]
        deliveries = [self.refund_delivery(r, outcome) for outcome in outcomes]
        return deliveries, await self.deliver(deliveries, copies, concurrent)
