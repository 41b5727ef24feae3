"""The sandbox delivers signed webhooks to a real receiver on loopback: through its checkout page,
its control routes (copies, concurrency, order, a wrong amount) and, in dev mode, by itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from hub.embedded import free_port
from providers.base import BadSignature, CheckoutRequest, Provider, TransferRequest
from providers.registry import ProviderConfig, build_providers
from providers.signatures import verify_paystack, verify_standard, verify_stripe
from sandbox.app import SandboxConfig, create_sandbox_app
from tests.hub.test_providers import Served

PAYSTACK_KEY = "sk_test_paystack_" + "q" * 24
STRIPE_KEY = "sk_test_stripe_" + "t" * 24
STRIPE_WHSEC = "whsec_stripe_" + "x" * 24
SANDBOX_WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
FLAVOURS = ["paystack", "stripe", "sandbox"]
PAID = {"paystack": "charge.success", "stripe": "checkout.session.completed"}
FAILED = {"paystack": "charge.failed", "stripe": "checkout.session.async_payment_failed"}


@dataclass(frozen=True)
class Received:
    provider: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.body)
        return value

    @property
    def type(self) -> str:
        return str(self.payload.get("event") or self.payload.get("type"))

    @property
    def event_id(self) -> str:
        if self.provider == "paystack":
            return f"{self.type}:{self.payload['data']['id']}"
        if self.provider == "stripe":
            return str(self.payload["id"])
        return self.headers["webhook-id"]

    @property
    def amount(self) -> int:
        data = self.payload["data"]
        obj = data.get("object", data)
        return int(obj.get("amount_total", obj.get("amount")))


class Receiver:
    """A stand-in hub: verifies each webhook with the signature functions and records it."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.rejected = 0
        self.answer = 200
        self._arrived = asyncio.Event()
        self.app = Starlette(routes=[Route("/webhooks/{provider}", self.receive, methods=["POST"])])

    async def receive(self, request: Request) -> Response:
        provider = request.path_params["provider"]
        body = await request.body()
        try:
            if provider == "paystack":
                verify_paystack(request.headers, body, PAYSTACK_KEY)
            elif provider == "stripe":
                verify_stripe(request.headers, body, STRIPE_WHSEC, time.time())
            else:
                verify_standard(request.headers, body, SANDBOX_WHSEC, time.time())
        except BadSignature:
            self.rejected += 1
            return PlainTextResponse("bad signature", 401)
        self.received.append(Received(provider, dict(request.headers), body))
        self._arrived.set()
        return PlainTextResponse("ok", self.answer)

    def about(self, needle: str) -> list[Received]:
        return [r for r in self.received if needle.encode() in r.body]

    async def wait_for(self, needle: str, count: int, timeout: float = 10) -> list[Received]:
        async def arrived() -> list[Received]:
            while len(self.about(needle)) < count:
                self._arrived.clear()
                await self._arrived.wait()
            return self.about(needle)

        return await asyncio.wait_for(arrived(), timeout)


@dataclass
class World:
    receiver: Receiver
    sandbox: Served
    http: httpx.AsyncClient
    providers: dict[str, Provider]


@contextlib.asynccontextmanager
async def running(auto_complete: bool) -> AsyncIterator[World]:
    receiver = Receiver()
    port = free_port()
    async with Served(receiver.app) as hub, httpx.AsyncClient(timeout=10) as http:
        config = SandboxConfig(
            paystack_secret_key=PAYSTACK_KEY,
            stripe_secret_key=STRIPE_KEY,
            stripe_webhook_secret=STRIPE_WHSEC,
            sandbox_webhook_secret=SANDBOX_WHSEC,
            hub_url=hub.url,
            public_url=f"http://127.0.0.1:{port}",
            auto_complete=auto_complete,
        )
        async with Served(create_sandbox_app(config), port) as sandbox:
            providers = build_providers(
                ProviderConfig(
                    paystack_secret_key=PAYSTACK_KEY,
                    paystack_base_url=f"{sandbox.url}/paystack",
                    stripe_secret_key=STRIPE_KEY,
                    stripe_webhook_secret=STRIPE_WHSEC,
                    stripe_base_url=f"{sandbox.url}/stripe",
                    standard_webhook_secrets={"sandbox": SANDBOX_WHSEC},
                    sandbox_url=sandbox.url,
                ),
                http,
            )
            yield World(receiver, sandbox, http, providers)


@pytest.fixture(scope="module")
async def world() -> AsyncIterator[World]:
    async with running(auto_complete=False) as made:
        yield made


def ref(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def paid_type(flavour: str) -> str:
    return PAID.get(flavour, "payment.succeeded")


def failed_type(flavour: str) -> str:
    return FAILED.get(flavour, "payment.failed")


async def checkout(world: World, flavour: str, amount: int = 5_000) -> tuple[str, str]:
    reference = ref("pay")
    made = await world.providers[flavour].initialize(
        CheckoutRequest(reference, amount, "NGN", "fan@example.com", "http://127.0.0.1/back?x=1")
    )
    return reference, made.checkout_url


async def deliver(world: World, path: str, **body: Any) -> dict[str, Any]:
    answer = await world.http.post(f"{world.sandbox.url}/_sandbox/{path}/deliver", json=body)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_pay_through_the_checkout_form(world: World, flavour: str) -> None:
    reference, url = await checkout(world, flavour)
    page = await world.http.get(url)
    action = re.search(r'<form method="post" action="([^"]+/pay)"', page.text)
    assert action is not None
    result = await world.http.post(str(httpx.URL(url).join(action.group(1))))
    assert result.status_code == 200
    assert "Payment succeeded" in result.text and "the hub answered 200" in result.text
    assert "Back to the merchant" in result.text and "http://127.0.0.1/back?x=1" in result.text
    [received] = world.receiver.about(reference)
    assert received.provider == flavour and received.type == paid_type(flavour)
    assert received.amount == 5_000
    again = await world.http.post(str(httpx.URL(url).join(action.group(1))))
    assert again.status_code == 409 and len(world.receiver.about(reference)) == 1


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_decline_delivers_a_failure(world: World, flavour: str) -> None:
    reference, url = await checkout(world, flavour)
    result = await world.http.post(f"{url}/decline")
    assert result.status_code == 200 and "Payment declined" in result.text
    [received] = world.receiver.about(reference)
    assert received.type == failed_type(flavour)


@pytest.mark.parametrize("concurrent", [False, True], ids=["sequential", "concurrent"])
@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_copies_are_identical(world: World, flavour: str, concurrent: bool) -> None:
    reference, _ = await checkout(world, flavour)
    result = await deliver(
        world, f"checkout/{reference}", outcome="succeeded", copies=5, concurrent=concurrent
    )
    assert result["statuses"] == [200] * 5 and len(result["event_ids"]) == 1
    copies = world.receiver.about(reference)
    assert len(copies) == 5
    assert {c.body for c in copies} == {copies[0].body}
    assert {c.event_id for c in copies} == {result["event_ids"][0]}
    signature = {"paystack": "x-paystack-signature", "stripe": "stripe-signature"}
    header = signature.get(flavour, "webhook-signature")
    assert {c.headers[header] for c in copies} == {copies[0].headers[header]}


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_events_arrive_in_the_order_asked(world: World, flavour: str) -> None:
    reference, _ = await checkout(world, flavour)
    result = await deliver(world, f"checkout/{reference}", events=["failed", "succeeded"])
    assert result["statuses"] == [200, 200]
    received = world.receiver.about(reference)
    assert [r.type for r in received] == [failed_type(flavour), paid_type(flavour)]
    assert [r.event_id for r in received] == result["event_ids"]
    assert len(set(result["event_ids"])) == 2


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_amount_override_simulates_a_mismatch(world: World, flavour: str) -> None:
    reference, _ = await checkout(world, flavour, amount=5_000)
    await deliver(world, f"checkout/{reference}", outcome="succeeded", amount=4_999)
    [received] = world.receiver.about(reference)
    assert received.amount == 4_999


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_transfers_wait_for_their_outcome(world: World, flavour: str) -> None:
    payout = ref("payout")
    await world.providers[flavour].transfer(TransferRequest(payout, 900, "NGN", "creator-1"))
    assert world.receiver.about(payout) == []  # no outcome until one is asked for
    result = await deliver(world, f"transfers/{payout}", outcome="reversed", copies=2)
    assert result["statuses"] == [200, 200]
    received = world.receiver.about(payout)
    assert len(received) == 2 and received[0].type.endswith("reversed")


async def test_refund_delivery_and_the_log(world: World) -> None:
    reference, url = await checkout(world, "sandbox")
    await world.http.post(f"{url}/pay")
    refund = ref("refund")
    answer = await world.http.post(
        f"{world.sandbox.url}/sandbox/refunds",
        json={"reference": refund, "payment_reference": reference, "amount": 5_000},
    )
    assert answer.status_code == 200
    world.receiver.answer = 503
    try:
        result = await deliver(world, f"refunds/{refund}", outcome="succeeded")
    finally:
        world.receiver.answer = 200
    assert result["statuses"] == [503]
    [received] = world.receiver.about(refund)
    assert received.type == "refund.processed"
    assert received.payload["data"]["payment_reference"] == reference
    log = (await world.http.get(f"{world.sandbox.url}/_sandbox/deliveries")).json()["deliveries"]
    [entry] = [e for e in log if refund in e["body"]]
    assert entry["status"] == 503 and entry["event_id"] == received.event_id
    assert entry["url"].endswith("/webhooks/sandbox")


async def test_control_routes_refuse_nonsense(world: World) -> None:
    reference, _ = await checkout(world, "sandbox")
    base = f"{world.sandbox.url}/_sandbox"
    for body in ({"outcome": "maybe"}, {"copies": 0}, {"events": "succeeded"}, {"amount": -1}):
        answer = await world.http.post(f"{base}/checkout/{reference}/deliver", json=body)
        assert answer.status_code == 400, body
    missing = await world.http.post(f"{base}/transfers/nope/deliver", json={})
    assert missing.status_code == 404
    assert world.receiver.about(reference) == []


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/paystack/transaction/initialize", {}),
        ("/paystack/transaction/initialize", {"Authorization": "Bearer sk_test_wrong"}),
        ("/stripe/v1/checkout/sessions", {}),
        ("/stripe/v1/checkout/sessions", {"Authorization": "Bearer sk_test_wrong"}),
    ],
)
async def test_provider_apis_check_the_secret(
    world: World, path: str, headers: dict[str, str]
) -> None:
    answer = await world.http.post(world.sandbox.url + path, headers=headers, json={})
    assert answer.status_code == 401


async def test_stripe_takes_the_key_as_basic_user(world: World) -> None:
    answer = await world.http.post(
        f"{world.sandbox.url}/stripe/v1/transfers",
        auth=(STRIPE_KEY, ""),
        data={"amount": "100", "currency": "usd", "destination": "acct_1"},
    )
    assert answer.status_code == 200 and answer.json()["object"] == "transfer"


async def test_auto_complete_delivers_transfer_and_refund_success() -> None:
    async with running(auto_complete=True) as world:
        payout = ref("payout")
        await world.providers["paystack"].transfer(TransferRequest(payout, 900, "NGN", "creator-1"))
        [received] = await world.receiver.wait_for(payout, 1)
        assert received.type == "transfer.success"
        reference, url = await checkout(world, "stripe")
        await world.http.post(f"{url}/pay")
        intent = world.receiver.about(reference)[0].payload["data"]["object"]["payment_intent"]
        answer = await world.http.post(
            f"{world.sandbox.url}/stripe/v1/refunds",
            headers={"Authorization": f"Bearer {STRIPE_KEY}"},
            data={"payment_intent": intent, "metadata[reference]": "auto-refund"},
        )
        assert answer.status_code == 200 and answer.json()["status"] == "pending"
        [refunded] = await world.receiver.wait_for("auto-refund", 1)
        assert refunded.payload["data"]["object"]["status"] == "succeeded"
        assert world.receiver.rejected == 0
