"""A state machine over the live hub: top-ups, tips, pay-per-view, payouts, refunds, fee changes
and replays, all through HTTP and the sandbox provider, compared after every step with a model
of the money (every balance and hold, the platform fee's share, purchases, the fee in force).

Hypothesis drives the machine from a worker thread; every request runs on the test's event loop,
where the live hub, the sandbox and their clients belong. Each example has its own users; the
platform fee account is shared, so the model tracks its change since the example began.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import httpx
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.checks import Violation, run_checks
from ledger.schema import accounts
from tests.conftest import FEE_BPS, Services, Stack, auth, run_jobs
from tests.money import deliver

T = TypeVar("T")
FANS, CREATORS, ITEMS_PER_CREATOR = 2, 2, 2
CURRENCIES = ("NGN", "USD")
PROVIDERS = ("paystack", "stripe", "sandbox")
STEP_TIMEOUT = 60.0
MAX_FEE_CHANGES = 3  # per example: enough to see sales at several rates
MACHINE_SETTINGS = settings(
    max_examples=12,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    # On a failure, shrink one bug to its shortest steps: every step is live, so keep it short.
    report_multiple_bugs=False,
    phases=[phase for phase in Phase if phase is not Phase.explain],
)

fans = st.integers(0, FANS - 1)
creators = st.integers(0, CREATORS - 1)


@dataclass(frozen=True)
class Live:
    """The running hub as the machine reaches it: its clients, and the loop they belong to."""

    loop: asyncio.AbstractEventLoop
    http: httpx.AsyncClient
    sandbox: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    services: Services
    stack: Stack

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout=STEP_TIMEOUT)
        except TimeoutError:
            future.cancel()
            raise


@dataclass
class TopUp:
    payment_id: int
    fan: str
    amount: int
    provider: str
    refunded: int = 0


@dataclass(frozen=True)
class Payout:
    id: int
    reference: str
    creator: str
    amount: int


@dataclass(frozen=True)
class Sent:
    """A money-moving request as first sent (`body` None: no body at all), and its answer."""

    user: str
    role: str
    path: str
    body: dict[str, Any] | None
    key: str
    status: int
    content: bytes


@dataclass(frozen=True)
class Observed:
    wallets: dict[str, dict[tuple[str, str], tuple[int, int, int]]]
    fee_account: int
    violations: list[Violation]


def _fee(amount: int, bps: int) -> int:
    return amount * bps // 10_000


def _amount(data: st.DataObject, limit: int) -> int:
    """An amount for a balance of `limit`: mostly within it, often exactly it or one more."""
    edges = [amount for amount in (limit, limit + 1) if amount > 0]
    around = st.integers(1, limit * 3 // 2 + 1) | st.sampled_from(edges)
    return data.draw(around, label="amount")


def _tampered(sent: Sent) -> dict[str, Any]:
    """A valid body that differs from the one first sent under the key."""
    if sent.body is None:
        return {"source": "wallet"}
    return {**sent.body, "amount": int(sent.body.get("amount") or 0) + 1}


async def _post(
    http: httpx.AsyncClient, user: str, role: str, path: str, body: dict[str, Any] | None, key: str
) -> httpx.Response:
    headers = {**auth(user, role), "Idempotency-Key": key}
    if body is None:
        return await http.post(path, headers=headers)
    return await http.post(path, json=body, headers=headers)


async def _wallet(
    http: httpx.AsyncClient, user: str, role: str
) -> dict[tuple[str, str], tuple[int, int, int]]:
    response = await http.get("/api/v1/wallet", headers=auth(user, role))
    assert response.status_code == 200, response.text
    return {
        (b["kind"], b["currency"]): (b["balance"], b["held"], b["available"])
        for b in response.json()["balances"]
    }


async def _fee_account(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        balance = await session.scalar(
            select(accounts.c.balance).where(
                accounts.c.owner_id.is_(None),
                accounts.c.kind == "platform_fee",
                accounts.c.currency == "NGN",
            )
        )
    return int(balance or 0)


async def _fee_bps(http: httpx.AsyncClient, admin: str) -> int:
    response = await http.get("/api/v1/admin/platform-fee", headers=auth(admin, "admin"))
    assert response.status_code == 200, response.text
    return int(response.json()["bps"])


async def _set_fee(http: httpx.AsyncClient, admin: str, bps: int) -> httpx.Response:
    return await http.put(
        "/api/v1/admin/platform-fee", json={"bps": bps}, headers=auth(admin, "admin")
    )


class HubMachine(RuleBasedStateMachine):
    live: ClassVar[Live]

    refundable = Bundle("refundable")  # succeeded top-ups
    payouts = Bundle("payouts")

    def __init__(self) -> None:
        super().__init__()
        tag = uuid.uuid4().hex[:10]
        self.fans = [f"sm-fan{i}-{tag}" for i in range(FANS)]
        self.creators = [f"sm-creator{i}-{tag}" for i in range(CREATORS)]
        self.admin = f"sm-admin-{tag}"
        self.wallets = {user: 0 for user in self.fans + self.creators}
        self.earnings = {creator: 0 for creator in self.creators}
        self.held = {creator: 0 for creator in self.creators}
        self.fee_bps = FEE_BPS
        self.fee_start = 0
        self.fee_delta = 0
        self.fee_changes = 0
        self.items: list[tuple[int, str, int]] = []  # (content id, creator, price)
        self.purchased: set[tuple[str, int]] = set()
        self.unsent: set[str] = set()  # payouts whose job has not run yet
        self.sent: list[Sent] = []

    # -- plumbing --

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.live.run(coro)

    def money(self, user: str, role: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        """A first request under a fresh Idempotency-Key, remembered for the replay rule."""
        key = uuid.uuid4().hex
        response = self.run(_post(self.live.http, user, role, path, body, key))
        assert "idempotent-replayed" not in response.headers
        assert response.status_code < 500, response.text
        self.sent.append(Sent(user, role, path, body, key, response.status_code, response.content))
        return response

    @staticmethod
    def refused(response: httpx.Response, status: int, type_: str) -> None:
        assert response.status_code == status, response.text
        assert response.json()["error"]["type"] == type_, response.text

    def expected_wallet(self, user: str) -> dict[tuple[str, str], tuple[int, int, int]]:
        expected = {("wallet", currency): (0, 0, 0) for currency in CURRENCIES}
        balance = self.wallets[user]
        expected["wallet", "NGN"] = (balance, 0, balance)
        if user in self.earnings:
            expected.update({("earnings", currency): (0, 0, 0) for currency in CURRENCIES})
            earned, held = self.earnings[user], self.held[user]
            expected["earnings", "NGN"] = (earned, held, earned - held)
        return expected

    async def observe(self) -> Observed:
        http, sessions = self.live.http, self.live.sessions
        users = [(fan, "fan") for fan in self.fans] + [(c, "creator") for c in self.creators]

        async def checks() -> list[Violation]:
            async with sessions() as session:
                return await run_checks(session)

        wallets = asyncio.gather(*(_wallet(http, user, role) for user, role in users))
        violations, fee_account, seen = await asyncio.gather(
            checks(), _fee_account(sessions), wallets
        )
        return Observed(
            wallets={user: wallet for (user, _), wallet in zip(users, seen, strict=True)},
            fee_account=fee_account,
            violations=violations,
        )

    # -- setup and teardown --

    @initialize(
        target=refundable,
        funding=st.lists(
            st.tuples(st.integers(1, 50_000), st.sampled_from(PROVIDERS)),
            min_size=FANS,
            max_size=FANS,
        ),
        prices=st.lists(
            st.integers(1, 20_000),
            min_size=CREATORS * ITEMS_PER_CREATOR,
            max_size=CREATORS * ITEMS_PER_CREATOR,
        ),
    )
    def start(self, funding: list[tuple[int, str]], prices: list[int]) -> Any:
        self.fee_bps = self.run(_fee_bps(self.live.http, self.admin))
        self.fee_start = self.run(_fee_account(self.live.sessions))
        for i, price in enumerate(prices):
            creator = self.creators[i % CREATORS]
            response = self.run(
                self.live.http.post(
                    "/api/v1/content",
                    json={"title": f"item {i}", "price": price, "currency": "NGN"},
                    headers=auth(creator, "creator"),
                )
            )
            assert response.status_code == 201, response.text
            self.items.append((response.json()["id"], creator, price))
        return self.refundable_only(
            *(
                self.top_up_wallet(fan, amount, provider, copies=1)
                for fan, (amount, provider) in zip(self.fans, funding, strict=True)
            )
        )

    def teardown(self) -> None:
        if self.fee_bps != FEE_BPS:
            response = self.run(_set_fee(self.live.http, self.admin, FEE_BPS))
            assert response.status_code == 200, response.text

    # -- rules --

    @rule(
        target=refundable,
        fan=fans,
        amount=st.integers(1, 50_000),
        provider=st.sampled_from(PROVIDERS),
        copies=st.integers(1, 3),
    )
    def top_up(self, fan: int, amount: int, provider: str, copies: int) -> Any:
        return self.refundable_only(self.top_up_wallet(self.fans[fan], amount, provider, copies))

    def top_up_wallet(self, user: str, amount: int, provider: str, copies: int) -> TopUp:
        body = {"amount": amount, "currency": "NGN", "provider": provider}
        response = self.money(user, "fan", "/api/v1/payments", body)
        assert response.status_code == 201, response.text
        payment = response.json()
        assert payment["status"] == "pending"
        result = self.run(
            deliver(
                self.live.sandbox,
                f"checkout/{payment['reference']}",
                outcome="succeeded",
                copies=copies,
            )
        )
        assert result["statuses"] == [200] * copies, result
        self.wallets[user] += amount
        return TopUp(payment["id"], user, amount, provider)

    @staticmethod
    def refundable_only(*topups: TopUp) -> Any:
        return multiple(*topups)

    @rule(fan=fans, creator=creators, data=st.data())
    def tip(self, fan: int, creator: int, data: st.DataObject) -> None:
        user, creator_id = self.fans[fan], self.creators[creator]
        amount = _amount(data, self.wallets[user])
        body = {"creator_id": creator_id, "amount": amount, "currency": "NGN"}
        response = self.money(user, "fan", "/api/v1/tips", body)
        if amount > self.wallets[user]:
            self.refused(response, 402, "insufficient_funds")
            return
        assert response.status_code == 201, response.text
        fee = _fee(amount, self.fee_bps)
        sent = response.json()
        assert (sent["amount"]["amount"], sent["fee"]["amount"], sent["net"]["amount"]) == (
            amount,
            fee,
            amount - fee,
        )
        self.wallets[user] -= amount
        self.earnings[creator_id] += amount - fee
        self.fee_delta += fee

    @rule(fan=fans, item=st.integers(0, CREATORS * ITEMS_PER_CREATOR - 1))
    def buy(self, fan: int, item: int) -> None:
        user = self.fans[fan]
        content_id, creator_id, price = self.items[item]
        response = self.money(user, "fan", f"/api/v1/content/{content_id}/purchase", None)
        if (user, content_id) in self.purchased:
            self.refused(response, 409, "already_purchased")
            return
        if price > self.wallets[user]:
            self.refused(response, 402, "insufficient_funds")
            return
        assert response.status_code == 201, response.text
        fee = _fee(price, self.fee_bps)
        bought = response.json()
        assert (bought["amount"]["amount"], bought["fee"]["amount"], bought["net"]["amount"]) == (
            price,
            fee,
            price - fee,
        )
        self.purchased.add((user, content_id))
        self.wallets[user] -= price
        self.earnings[creator_id] += price - fee
        self.fee_delta += fee

    @rule(payment=refundable, data=st.data())
    def refund(self, payment: TopUp, data: st.DataObject) -> None:
        remaining = payment.amount - payment.refunded
        edges = [amount for amount in (remaining, remaining + 1) if amount > 0]
        amount = data.draw(
            st.none() | st.integers(1, payment.amount + 100) | st.sampled_from(edges),
            label="amount",
        )
        body: dict[str, Any] = {"payment_id": payment.payment_id}
        if amount is not None:
            body["amount"] = amount
        response = self.money(self.admin, "admin", "/api/v1/refunds", body)
        refunding = remaining if amount is None else amount
        if remaining == 0:
            self.refused(response, 409, "refund_not_allowed")
        elif refunding > remaining:
            self.refused(response, 422, "refund_exceeds_payment")
        elif refunding > self.wallets[payment.fan]:
            self.refused(response, 402, "insufficient_funds")
        else:
            assert response.status_code == 201, response.text
            assert response.json()["amount"]["amount"] == refunding
            payment.refunded += refunding
            self.wallets[payment.fan] -= refunding

    @precondition(lambda self: any(self.earnings[c] > self.held[c] for c in self.creators))
    @rule(
        target=payouts,
        creator=creators,
        provider=st.sampled_from((None, *PROVIDERS)),
        data=st.data(),
    )
    def request_payout(self, creator: int, provider: str | None, data: st.DataObject) -> Any:
        creator_id = self.creators[creator]
        amount = _amount(data, self.earnings[creator_id] - self.held[creator_id])
        body: dict[str, Any] = {"amount": amount, "currency": "NGN"}
        if provider is not None:
            body["provider"] = provider
        response = self.money(creator_id, "creator", "/api/v1/payouts", body)
        if amount > self.earnings[creator_id] - self.held[creator_id]:
            self.refused(response, 402, "insufficient_funds")
            return multiple()
        assert response.status_code == 201, response.text
        created = response.json()
        assert created["status"] == "pending"
        self.held[creator_id] += amount
        self.unsent.add(created["reference"])
        return Payout(created["id"], created["reference"], creator_id, amount)

    @rule(payout=consumes(payouts), copies=st.integers(1, 3))
    def payout_succeeds(self, payout: Payout, copies: int) -> None:
        self.settle(payout, "succeeded", copies)

    @rule(payout=consumes(payouts), copies=st.integers(1, 3))
    def payout_fails(self, payout: Payout, copies: int) -> None:
        self.settle(payout, "failed", copies)

    def settle(self, payout: Payout, outcome: str, copies: int) -> None:
        """Run the payout's job (it asks the provider to send the money), then deliver the
        provider's outcome `copies` times."""
        if payout.reference in self.unsent:
            self.run(run_jobs(self.live.services, self.live.stack))
            self.unsent.clear()  # the burst worker sent every queued payout
        result = self.run(
            deliver(
                self.live.sandbox, f"transfers/{payout.reference}", outcome=outcome, copies=copies
            )
        )
        assert result["statuses"] == [200] * copies, result
        self.held[payout.creator] -= payout.amount
        if outcome == "succeeded":
            self.earnings[payout.creator] -= payout.amount
        shown = self.run(
            self.live.http.get(
                f"/api/v1/payouts/{payout.id}", headers=auth(payout.creator, "creator")
            )
        )
        assert shown.json()["status"] == ("paid" if outcome == "succeeded" else "failed")

    @precondition(lambda self: self.fee_changes < MAX_FEE_CHANGES)
    @rule(bps=st.integers(-1, 5_001))
    def change_fee(self, bps: int) -> None:
        response = self.run(_set_fee(self.live.http, self.admin, bps))
        if not 0 <= bps <= 5_000:
            self.refused(response, 422, "invalid_request")
            return
        assert response.status_code == 200, response.text
        assert response.json() == {"bps": bps}
        self.fee_bps = bps
        self.fee_changes += 1
        assert self.run(_fee_bps(self.live.http, self.admin)) == bps

    @precondition(lambda self: self.sent)
    @rule(data=st.data(), tamper=st.booleans())
    def replay(self, data: st.DataObject, tamper: bool) -> None:
        sent = data.draw(st.sampled_from(self.sent), label="sent")
        http = self.live.http
        if tamper:
            body = _tampered(sent)
            response = self.run(_post(http, sent.user, sent.role, sent.path, body, sent.key))
            self.refused(response, 422, "idempotency_key_reused")
            assert "idempotent-replayed" not in response.headers
            return
        response = self.run(_post(http, sent.user, sent.role, sent.path, sent.body, sent.key))
        assert response.status_code == sent.status
        assert response.content == sent.content
        assert response.headers.get("idempotent-replayed") == "true"

    # -- the comparison, after every step --

    @invariant()
    def books_match_the_model(self) -> None:
        observed = self.run(self.observe())
        assert observed.violations == [], observed.violations
        for user, wallet in observed.wallets.items():
            assert wallet == self.expected_wallet(user), user
        assert observed.fee_account - self.fee_start == self.fee_delta


async def test_the_hub_agrees_with_a_model_of_its_money(
    stack: Stack,
    services: Services,
    sessions: async_sessionmaker[AsyncSession],
    http: httpx.AsyncClient,
    sandbox: httpx.AsyncClient,
) -> None:
    live = Live(asyncio.get_running_loop(), http, sandbox, sessions, services, stack)
    machine = type("LiveHubMachine", (HubMachine,), {"live": live})
    try:
        await asyncio.to_thread(run_state_machine_as_test, machine, settings=MACHINE_SETTINGS)
    finally:
        restored = await _set_fee(http, f"sm-admin-{uuid.uuid4().hex[:10]}", FEE_BPS)
        assert restored.status_code == 200, restored.text
        # Send what the examples left queued (refunds, unsettled payouts), so that no later
        # burst worker, perhaps without providers, waits on our jobs' retries.
        await asyncio.wait_for(run_jobs(services, stack), STEP_TIMEOUT)
