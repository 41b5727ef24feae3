"""Provider adapters against a live sandbox on loopback, and their parsing of webhook bodies."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from hub.embedded import free_port
from ledger.provider_events import EventKind
from providers.base import (
    CheckoutRequest,
    MalformedPayload,
    Provider,
    ProviderError,
    RefundRequest,
    TransferRequest,
)
from providers.paystack import Paystack
from providers.registry import ProviderConfig, build_providers
from providers.standard import StandardWebhooks
from providers.stripe import Stripe
from sandbox.app import SandboxConfig, create_sandbox_app

PAYSTACK_KEY = "sk_test_paystack_" + "k" * 24
STRIPE_KEY = "sk_test_stripe_" + "s" * 24
STRIPE_WHSEC = "whsec_stripe_" + "w" * 24
SANDBOX_WHSEC = "whsec_c2FuZGJveC13ZWJob29rLXNlY3JldC0xMjM0NTY3OA"  # unpadded on purpose


class Served:
    """An ASGI app under uvicorn on a free loopback port, in this event loop."""

    def __init__(self, app: ASGIApp, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, lifespan="on", log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Served:
        self._task = asyncio.create_task(self.server.serve())
        for _ in range(400):
            if self.server.started:
                return self
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.025)
        raise RuntimeError("server did not start")

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        if self._task is not None:
            await self._task


@pytest.fixture(scope="module")
async def sandbox() -> AsyncIterator[Served]:
    port = free_port()
    config = SandboxConfig(
        paystack_secret_key=PAYSTACK_KEY,
        stripe_secret_key=STRIPE_KEY,
        stripe_webhook_secret=STRIPE_WHSEC,
        sandbox_webhook_secret=SANDBOX_WHSEC,
        hub_url=f"http://127.0.0.1:{free_port()}",  # nobody listens: deliveries are only logged
        public_url=f"http://127.0.0.1:{port}",
    )
    async with Served(create_sandbox_app(config), port) as served:
        yield served


@pytest.fixture(scope="module")
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def ref(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def adapters(sandbox: Served, http: httpx.AsyncClient) -> dict[str, Provider]:
    return build_providers(
        ProviderConfig(
            paystack_secret_key=PAYSTACK_KEY,
            paystack_base_url=f"{sandbox.url}/paystack",
            stripe_secret_key=STRIPE_KEY,
            stripe_webhook_secret=STRIPE_WHSEC,
            stripe_base_url=f"{sandbox.url}/stripe",
            standard_webhook_secrets={"sandbox": SANDBOX_WHSEC, "other": SANDBOX_WHSEC},
            sandbox_url=sandbox.url,
        ),
        http,
    )


async def paid_payment(
    sandbox: Served, http: httpx.AsyncClient, provider: Provider, currency: str = "NGN"
) -> tuple[str, str]:
    """A payment the sandbox considers paid: (our reference, the provider's payment ref)."""
    reference = ref("pay")
    checkout = await provider.initialize(
        CheckoutRequest(reference, 50_000, currency, "fan@example.com", "http://127.0.0.1/done")
    )
    answer = await http.post(
        f"{sandbox.url}/_sandbox/checkout/{reference}/deliver", json={"outcome": "succeeded"}
    )
    assert answer.status_code == 200
    return reference, checkout.provider_ref


async def test_registry_builds_what_is_configured(sandbox: Served, http: httpx.AsyncClient) -> None:
    built = adapters(sandbox, http)
    assert sorted(built) == ["other", "paystack", "sandbox", "stripe"]
    assert all(name == provider.name for name, provider in built.items())
    assert build_providers(ProviderConfig(stripe_secret_key=STRIPE_KEY), http) == {}
    with pytest.raises(ValueError):
        build_providers(ProviderConfig(standard_webhook_secrets={"stripe": SANDBOX_WHSEC}), http)


@pytest.mark.parametrize("name", ["paystack", "stripe", "sandbox"])
async def test_initialize_returns_a_checkout_page(
    sandbox: Served, http: httpx.AsyncClient, name: str
) -> None:
    provider = adapters(sandbox, http)[name]
    reference = ref("pay")
    checkout = await provider.initialize(
        CheckoutRequest(reference, 123_456, "NGN", "fan@example.com", "http://127.0.0.1/back")
    )
    assert checkout.provider_ref and checkout.checkout_url.startswith(sandbox.url)
    page = await http.get(checkout.checkout_url)
    assert page.status_code == 200
    assert "NGN 1,234.56" in page.text and reference in page.text
    assert 'action="' in page.text and "Pay</button>" in page.text and "Decline" in page.text


async def test_paystack_transfer_refund_and_verify(
    sandbox: Served, http: httpx.AsyncClient
) -> None:
    paystack = adapters(sandbox, http)["paystack"]
    assert isinstance(paystack, Paystack)
    payout = TransferRequest(ref("payout"), 20_000, "NGN", "creator-1")
    code = await paystack.transfer(payout)
    assert code.startswith("TRF_")
    assert await paystack.transfer(payout) == code  # a retry with the same reference
    reference, _ = await paid_payment(sandbox, http, paystack)
    verified = await paystack.verify_transaction(reference)
    assert verified["status"] == "success" and verified["amount"] == 50_000
    refund_id = await paystack.refund(RefundRequest(ref("refund"), reference, None, 10_000, "NGN"))
    assert refund_id.isdigit()
    with pytest.raises(ProviderError, match="not found"):
        await paystack.verify_transaction("no-such-reference")


async def test_stripe_transfer_and_refund(sandbox: Served, http: httpx.AsyncClient) -> None:
    stripe = adapters(sandbox, http)["stripe"]
    transfer_id = await stripe.transfer(TransferRequest(ref("payout"), 20_000, "USD", "acct_1"))
    assert transfer_id.startswith("tr_")
    reference, session_id = await paid_payment(sandbox, http, stripe, "USD")
    assert session_id.startswith("cs_")
    intent = next(
        json.loads(d["body"])["data"]["object"]["payment_intent"]
        for d in (await http.get(f"{sandbox.url}/_sandbox/deliveries")).json()["deliveries"]
        if reference in d["body"]
    )
    refund = RefundRequest(ref("refund"), reference, intent, 50_000, "USD")
    refund_id = await stripe.refund(refund)
    assert refund_id.startswith("re_")
    assert await stripe.refund(refund) == refund_id  # Idempotency-Key: no second refund
    with pytest.raises(ProviderError, match="PaymentIntent"):
        await stripe.refund(RefundRequest(ref("refund"), reference, None, 1, "USD"))
    with pytest.raises(ProviderError, match="400"):  # nothing left to refund
        await stripe.refund(RefundRequest(ref("refund"), reference, intent, 1, "USD"))


async def test_sandbox_sender_transfer_and_refund(sandbox: Served, http: httpx.AsyncClient) -> None:
    built = adapters(sandbox, http)
    transfer_id = await built["sandbox"].transfer(
        TransferRequest(ref("payout"), 700, "NGN", "creator-1")
    )
    assert transfer_id.startswith("sbx_tr_")
    reference, payment_id = await paid_payment(sandbox, http, built["sandbox"])
    refund_id = await built["sandbox"].refund(
        RefundRequest(ref("refund"), reference, payment_id, 50_000, "NGN")
    )
    assert refund_id.startswith("sbx_rf_")
    with pytest.raises(ProviderError, match="only sends webhooks"):
        await built["other"].transfer(TransferRequest(ref("payout"), 700, "NGN", "creator-1"))


@pytest.mark.parametrize("name", ["paystack", "stripe"])
async def test_wrong_secret_is_a_provider_error_without_the_secret(
    sandbox: Served, http: httpx.AsyncClient, name: str
) -> None:
    wrong = "sk_test_wrong_" + uuid.uuid4().hex
    provider: Provider = (
        Paystack(wrong, f"{sandbox.url}/paystack", http)
        if name == "paystack"
        else Stripe(wrong, STRIPE_WHSEC, f"{sandbox.url}/stripe", http)
    )
    with pytest.raises(ProviderError) as caught:
        await provider.initialize(CheckoutRequest(ref("pay"), 100, "NGN", "fan@example.com"))
    assert "401" in str(caught.value) and wrong not in str(caught.value)


async def test_unreachable_provider_is_a_provider_error(http: httpx.AsyncClient) -> None:
    paystack = Paystack(PAYSTACK_KEY, f"http://127.0.0.1:{free_port()}", http)
    with pytest.raises(ProviderError, match="ConnectError"):
        await paystack.transfer(TransferRequest(ref("payout"), 100, "NGN", "RCP_known"))


# -- parsing: the sandbox's own webhooks, every kind, through each adapter --


async def _delivered(sandbox: Served, http: httpx.AsyncClient, needle: str) -> list[dict[str, Any]]:
    log = (await http.get(f"{sandbox.url}/_sandbox/deliveries")).json()["deliveries"]
    return [d for d in log if needle in d["body"]]


@pytest.mark.parametrize("name", ["paystack", "stripe", "sandbox"])
async def test_sandbox_webhooks_parse_into_events(
    sandbox: Served, http: httpx.AsyncClient, name: str
) -> None:
    provider = adapters(sandbox, http)[name]
    currency = "USD" if name == "stripe" else "NGN"
    reference = ref("pay")
    checkout = await provider.initialize(
        CheckoutRequest(reference, 9_900, currency, "fan@example.com")
    )
    await http.post(
        f"{sandbox.url}/_sandbox/checkout/{checkout.provider_ref}/deliver",
        json={"events": ["failed", "succeeded"]},
    )
    payout = ref("payout")
    await provider.transfer(TransferRequest(payout, 4_000, currency, "acct_creator"))
    await http.post(
        f"{sandbox.url}/_sandbox/transfers/{payout}/deliver",
        json={"events": ["succeeded", "failed", "reversed"]},
    )
    intent = None
    if name == "stripe":
        intent = json.loads((await _delivered(sandbox, http, reference))[-1]["body"])["data"][
            "object"
        ]["payment_intent"]
    refund = ref("refund")
    await provider.refund(
        RefundRequest(refund, reference, intent or checkout.provider_ref, 1_500, currency)
    )
    await http.post(f"{sandbox.url}/_sandbox/refunds/{refund}/deliver", json={})

    events = []
    for needle in (reference, payout):
        for delivery in await _delivered(sandbox, http, needle):
            body = delivery["body"].encode()
            provider.verify(delivery["headers"], body, time.time())
            events.append(provider.parse(delivery["headers"], body))
    by_kind = {event.kind: event for event in events}
    assert [e.kind for e in events] == [
        EventKind.PAYMENT_FAILED,
        EventKind.PAYMENT_SUCCEEDED,
        EventKind.REFUND_PROCESSED,
        EventKind.TRANSFER_SUCCEEDED,
        EventKind.TRANSFER_FAILED,
        EventKind.TRANSFER_REVERSED,
    ]
    assert all(event.provider == name and event.event_id for event in events)
    assert len({event.event_id for event in events}) == len(events)
    paid = by_kind[EventKind.PAYMENT_SUCCEEDED]
    assert (paid.reference, paid.amount, paid.currency) == (reference, 9_900, currency)
    assert paid.provider_ref
    refunded = by_kind[EventKind.REFUND_PROCESSED]
    assert (refunded.reference, refunded.payment_reference) == (refund, reference)
    assert (refunded.amount, refunded.currency) == (1_500, currency) and refunded.provider_ref
    for kind in (EventKind.TRANSFER_SUCCEEDED, EventKind.TRANSFER_REVERSED):
        assert by_kind[kind].reference == payout and by_kind[kind].provider_ref


# -- parsing: hand-written bodies in the providers' documented shapes --


def _paystack() -> Paystack:
    return Paystack(PAYSTACK_KEY, "http://127.0.0.1:9", httpx.AsyncClient())


def _stripe() -> Stripe:
    return Stripe(STRIPE_KEY, STRIPE_WHSEC, "http://127.0.0.1:9", httpx.AsyncClient())


def _standard() -> StandardWebhooks:
    return StandardWebhooks("acme", SANDBOX_WHSEC, None, httpx.AsyncClient())


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def test_paystack_parse_kinds() -> None:
    paystack = _paystack()
    charge = {"id": 302961, "reference": "r-1", "amount": 10000, "currency": "ngn"}
    event = paystack.parse({}, _json({"event": "charge.success", "data": charge}))
    assert (event.kind, event.event_id, event.reference) == (
        EventKind.PAYMENT_SUCCEEDED,
        "charge.success:302961",
        "r-1",
    )
    assert (event.amount, event.currency, event.provider_ref) == (10000, "NGN", "302961")
    # Paystack's documented refund webhook: amount as a string, no id, no merchant reference.
    refund = {
        "status": "processed",
        "transaction_reference": "r-1",
        "refund_reference": "132013318360",
        "amount": "5000",
        "currency": "NGN",
    }
    body = _json({"event": "refund.processed", "data": refund})
    event = paystack.parse({}, body)
    assert event.kind is EventKind.REFUND_PROCESSED
    assert (event.payment_reference, event.reference, event.amount) == ("r-1", None, 5000)
    assert event.event_id.startswith("refund.processed:sha256:")
    assert paystack.parse({}, body).event_id == event.event_id  # a redelivery dedupes
    transfer = {"reference": "po-1", "transfer_code": "TRF_x", "amount": 300, "currency": "NGN"}
    event = paystack.parse({}, _json({"event": "transfer.reversed", "data": transfer}))
    assert (event.kind, event.reference, event.provider_ref) == (
        EventKind.TRANSFER_REVERSED,
        "po-1",
        "TRF_x",
    )
    event = paystack.parse({}, _json({"event": "subscription.create", "data": {"id": 7}}))
    assert (event.kind, event.event_id) == (EventKind.UNKNOWN, "subscription.create:7")


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"\xff\xfe",
        b"[1, 2]",
        b'"charge.success"',
        _json({"data": {}}),
        _json({"event": "charge.success", "data": []}),
        _json({"event": "charge.success", "data": {"reference": "r", "currency": "NGN"}}),
        _json({"event": "charge.success", "data": {"reference": "r", "amount": 1.5}}),
        _json({"event": "refund.processed", "data": {"amount": "5", "currency": "NGN"}}),
        _json({"event": "transfer.success", "data": {"transfer_code": "TRF_1"}}),
    ],
)
def test_paystack_malformed(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        _paystack().parse({}, body)


def _stripe_event(type_: str, obj: dict[str, Any]) -> bytes:
    return _json({"id": "evt_1", "object": "event", "type": type_, "data": {"object": obj}})


def test_stripe_parse_kinds() -> None:
    stripe = _stripe()
    session = {
        "id": "cs_1",
        "payment_status": "paid",
        "client_reference_id": None,
        "metadata": {"reference": "r-2"},
        "amount_total": 2500,
        "currency": "usd",
        "payment_intent": {"id": "pi_1", "object": "payment_intent"},  # expanded
    }
    event = stripe.parse({}, _stripe_event("checkout.session.completed", session))
    assert (event.kind, event.event_id, event.reference) == (
        EventKind.PAYMENT_SUCCEEDED,
        "evt_1",
        "r-2",
    )
    assert (event.amount, event.currency, event.provider_ref) == (2500, "USD", "pi_1")
    unpaid = session | {"payment_status": "unpaid"}
    assert stripe.parse({}, _stripe_event("checkout.session.completed", unpaid)).kind is (
        EventKind.UNKNOWN
    )
    expired = stripe.parse({}, _stripe_event("checkout.session.expired", unpaid))
    assert (expired.kind, expired.reference) == (EventKind.PAYMENT_FAILED, "r-2")
    intent = {"id": "pi_2", "amount": 900, "currency": "usd", "metadata": {"reference": "r-3"}}
    failed = stripe.parse({}, _stripe_event("payment_intent.payment_failed", intent))
    assert (failed.kind, failed.reference, failed.provider_ref) == (
        EventKind.PAYMENT_FAILED,
        "r-3",
        "pi_2",
    )
    refund = {"id": "re_1", "status": "pending", "amount": 100, "currency": "usd", "metadata": {}}
    assert stripe.parse({}, _stripe_event("refund.created", refund)).kind is EventKind.UNKNOWN
    done = stripe.parse({}, _stripe_event("refund.updated", refund | {"status": "succeeded"}))
    assert (done.kind, done.provider_ref, done.reference) == (
        EventKind.REFUND_PROCESSED,
        "re_1",
        None,
    )
    transfer = {"id": "tr_1", "amount": 5, "currency": "usd", "metadata": {"reference": "po-2"}}
    created = stripe.parse({}, _stripe_event("transfer.created", transfer))
    assert (created.kind, created.reference) == (EventKind.TRANSFER_SUCCEEDED, "po-2")
    assert stripe.parse({}, _stripe_event("invoice.paid", {"id": "in_1"})).kind is (
        EventKind.UNKNOWN
    )


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"null",
        _json({"type": "checkout.session.completed", "data": {"object": {}}}),
        _json({"id": "evt_1", "type": "invoice.paid", "data": {}}),
        _stripe_event("checkout.session.completed", {"payment_status": "paid", "amount_total": 1}),
        _stripe_event("transfer.created", {"id": "tr_1", "metadata": {}}),
    ],
)
def test_stripe_malformed(body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        _stripe().parse({}, body)


def test_standard_parse_kinds() -> None:
    sender = _standard()
    headers = {"webhook-id": "msg_42"}
    data = {"id": "x1", "reference": "r-4", "amount": 700, "currency": "ngn"}
    event = sender.parse(headers, _json({"type": "payment.succeeded", "data": data}))
    assert (event.provider, event.event_id, event.kind) == (
        "acme",
        "msg_42",
        EventKind.PAYMENT_SUCCEEDED,
    )
    assert (event.reference, event.amount, event.currency, event.provider_ref) == (
        "r-4",
        700,
        "NGN",
        "x1",
    )
    refund = data | {"payment_reference": "r-0"}
    event = sender.parse(headers, _json({"type": "refund.processed", "data": refund}))
    assert (event.kind, event.payment_reference) == (EventKind.REFUND_PROCESSED, "r-0")
    event = sender.parse(headers, _json({"type": "unknown", "data": data}))
    assert event.kind is EventKind.UNKNOWN
    assert sender.parse(headers, _json({"type": "user.created", "data": 3})).kind is (
        EventKind.UNKNOWN
    )


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        ({"webhook-id": "msg_1"}, b"{]"),
        ({"webhook-id": "msg_1"}, _json({"data": {}})),
        ({"webhook-id": "msg_1"}, _json({"type": "payment.failed", "data": {}})),
        ({"webhook-id": "msg_1"}, _json({"type": "payment.succeeded", "data": {"reference": "r"}})),
        ({}, _json({"type": "payment.failed", "data": {"reference": "r"}})),
    ],
)
def test_standard_malformed(headers: dict[str, str], body: bytes) -> None:
    with pytest.raises(MalformedPayload):
        _standard().parse(headers, body)
