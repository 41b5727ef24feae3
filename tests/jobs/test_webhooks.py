"""Outbound webhooks as a platform's receiver meets them: a real HTTP server on 127.0.0.1 gets
the tip's and the payout's events, signed the Standard Webhooks way (checked with the reference
library), at least once and in order per user; one that answers 500 for a while gets every
delivery later, in order; the delivery log, redelivery, secret rotation, disabling, the SSRF
guard, and apps that never get each other's events."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hub.runtime import build_provider_clients
from jobs.webhooks import WebhookConfig
from jobs.worker import build_worker
from ledger.accounts import Role
from ledger.apps import Scope, create_app, create_key
from ledger.db import unit_of_work
from tests.conftest import (
    LiveServer,
    Services,
    Stack,
    auth,
    create_user,
    hub_server,
    make_settings,
)
from tests.hub.test_payouts_refunds import earning_creator, payout
from tests.money import key

FAST = WebhookConfig(retry_schedule=(0.1,) * 6, allow_private=True, jitter=0.0)


@dataclass
class Receiver:
    """A platform's webhook endpoint: records what it is sent; answers `failing` 500s first."""

    failing: int = 0
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    refused: int = 0
    server: LiveServer | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def hook(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        if self.failing > 0:
            self.failing -= 1
            self.refused += 1
            return PlainTextResponse("not now: " + "x" * 2000, status_code=500)
        self.received.append((dict(request.headers), body))
        self._arrived.set()
        return PlainTextResponse("ok")

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.url}/hook"

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in self.received]

    async def wait_for(self, predicate: Any, timeout: float = 15) -> list[dict[str, Any]]:
        async def met() -> list[dict[str, Any]]:
            while not predicate(self.events()):
                self._arrived.clear()
                await self._arrived.wait()
            return self.events()

        return await asyncio.wait_for(met(), timeout)


@contextlib.asynccontextmanager
async def receiver(failing: int = 0) -> AsyncIterator[Receiver]:
    found = Receiver(failing=failing)
    server = LiveServer(Starlette(routes=[Route("/hook", found.hook, methods=["POST"])]))
    found.server = server
    await server.start()
    try:
        yield found
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def running_worker(
    services: Services, config: WebhookConfig = FAST, stack: Stack | None = None
) -> AsyncIterator[None]:
    """A real arq worker (not burst): its background sender delivers and retries; with
    `stack`, its providers reach the sandbox (payouts are sent)."""
    providers, client = build_provider_clients(
        make_settings(services, stack.sandbox.url if stack else None)
    )
    worker = build_worker(
        database_url=services.database_url,
        redis_url=services.redis_url,
        providers=providers,
        webhooks=config,
        handle_signals=False,
    )
    task = asyncio.create_task(worker.main())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # close() awaits the worker's job tasks; one that was running when main() was
        # cancelled ends cancelled, and close() raises that: it is this helper's own stop
        with contextlib.suppress(asyncio.CancelledError):
            await worker.close()
        await client.aclose()


async def admin_key(sessions, app_id: str = "default") -> dict[str, str]:
    async with unit_of_work(sessions) as uow:
        _, secret = await create_key(uow.session, app_id, (Scope.ADMIN, Scope.READ))
    return {"Authorization": f"Bearer {secret}"}


@contextlib.asynccontextmanager
async def endpoint(
    http: httpx.AsyncClient, headers: dict[str, str], url: str, **fields: Any
) -> AsyncIterator[dict[str, Any]]:
    """An endpoint of the key's app for the test's length (deleted after: the shared database
    must not keep fanning every later test's events out to it)."""
    made = await http.post(
        "/api/v1/webhook-endpoints", json={"url": url, **fields}, headers=headers
    )
    assert made.status_code == 201, made.text
    try:
        yield made.json()
    finally:
        gone = await http.delete(f"/api/v1/webhook-endpoints/{made.json()['id']}", headers=headers)
        assert gone.status_code == 204


def verified(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(secret).verify(body, headers)
    return payload


async def settled(
    http: httpx.AsyncClient, headers: dict[str, str], endpoint_id: int, count: int
) -> list[dict[str, Any]]:
    """The endpoint's delivery log once `count` deliveries are there and none is pending (the
    worker records an outcome after the receiver answered)."""
    for _ in range(300):
        log = await http.get(
            f"/api/v1/webhook-endpoints/{endpoint_id}/deliveries",
            params={"limit": 100},
            headers=headers,
        )
        assert log.status_code == 200, log.text
        rows: list[dict[str, Any]] = log.json()["data"]
        if len(rows) >= count and all(row["status"] != "pending" for row in rows):
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"deliveries still pending: {rows}")


def in_order_per_user(events: list[dict[str, Any]]) -> dict[str, list[int]]:
    by_user: dict[str, list[int]] = {}
    for event in events:
        by_user.setdefault(event["user_id"], []).append(event["seq"])
    return by_user


async def test_a_tip_and_a_payout_reach_the_platform_signed_and_in_order(
    http, sandbox, sessions, services, stack, uid
) -> None:
    headers = await admin_key(sessions)
    async with receiver() as hook, endpoint(http, headers, hook.url + "") as made:
        secret = made["secret"]
        assert secret.startswith("whsec_") and made["event_types"] == []
        creator = await earning_creator(http, sandbox, uid, sessions, 9_000)
        created = await payout(http, creator, 6_000)
        assert created.status_code == 201
        async with running_worker(services, stack=stack):
            # the payout is sent to the sandbox by the worker; its webhook settles it
            reference = created.json()["reference"]
            for _ in range(100):
                sent = await sandbox.post(
                    f"/_sandbox/transfers/{reference}/deliver", json={"outcome": "succeeded"}
                )
                if sent.status_code == 200:
                    break
                await asyncio.sleep(0.1)  # the worker has not asked the provider yet
            assert sent.status_code == 200, sent.text
            events = await hook.wait_for(
                lambda seen: any(
                    e["type"] == "payout.paid" and e["user_id"] == creator for e in seen
                )
            )
        for headers_sent, body in hook.received:
            payload = verified(secret, headers_sent, body)  # the reference library's check
            assert headers_sent["webhook-id"] == payload["id"] == f"evt_{payload['id'][4:]}"
        mine = [e for e in events if e["user_id"] == creator]
        kinds = [e["type"] for e in mine]
        assert "tip.received" in kinds and "payout.paid" in kinds
        tip = next(e for e in mine if e["type"] == "tip.received")
        assert tip["data"]["net"] == 9_000 and tip["app_id"] == "default"
        balances = [e["data"] for e in mine if e["type"] == "balance.updated"]
        assert [b["version"] for b in balances] == sorted(b["version"] for b in balances)
        for seqs in in_order_per_user(events).values():
            assert seqs == sorted(seqs)
        with pytest.raises(WebhookVerificationError):
            verified("whsec_" + "A" * 32, *hook.received[0])


async def test_a_receiver_that_fails_for_a_while_gets_everything_later_in_order(
    http, sessions, services, uid, people
) -> None:
    headers = await admin_key(sessions)
    async with (
        receiver(failing=4) as hook,
        endpoint(http, headers, hook.url, event_types=["tip.received", "tip.sent"]) as made,
    ):
        tips = []
        for n in range(5):
            answer = await http.post(
                "/api/v1/tips",
                json={"creator_id": people.creator, "amount": 100 + n, "currency": "NGN"},
                headers={**auth(people.fan, "fan"), **key()},
            )
            assert answer.status_code == 201
            tips.append(answer.json()["id"])
        async with running_worker(services):
            events = await hook.wait_for(lambda seen: len(seen) >= 10)
            rows = await settled(http, headers, made["id"], 10)
        assert hook.refused == 4
        assert {e["type"] for e in events} == {"tip.received", "tip.sent"}  # the filter
        received = [e["data"]["tip_id"] for e in events if e["type"] == "tip.received"]
        sent = [e["data"]["tip_id"] for e in events if e["type"] == "tip.sent"]
        assert received == tips and sent == tips  # every one, in order, once delivered
        assert {row["status"] for row in rows} == {"delivered"}
        retried = [row for row in rows if row["attempts"] > 1]
        assert retried  # the refused ones were retried
        one = await http.get(f"/api/v1/webhook-deliveries/{retried[0]['id']}", headers=headers)
        attempts = one.json()["attempt_log"]
        assert attempts[0]["status_code"] == 500 and attempts[-1]["status_code"] == 200
        assert len(attempts[0]["response"]) == 1024  # the first bytes of the answer
        assert json.loads(one.json()["payload"])["id"] == one.json()["webhook_id"]


async def test_redelivery_of_one_and_of_all_since_a_time(http, sessions, services, people) -> None:
    headers = await admin_key(sessions)
    async with (
        receiver() as hook,
        endpoint(http, headers, hook.url, event_types=["tip.received"]) as made,
    ):
        before = datetime.now(UTC)
        for amount in (101, 102):
            answer = await http.post(
                "/api/v1/tips",
                json={"creator_id": people.creator, "amount": amount, "currency": "NGN"},
                headers={**auth(people.fan, "fan"), **key()},
            )
            assert answer.status_code == 201
        async with running_worker(services):
            await hook.wait_for(lambda seen: len(seen) == 2)
            log = await http.get(
                f"/api/v1/webhook-endpoints/{made['id']}/deliveries", headers=headers
            )
            newest = log.json()["data"][0]
            again = await http.post(
                f"/api/v1/webhook-deliveries/{newest['id']}/redeliver", headers=headers
            )
            assert again.status_code == 202 and again.json()["status"] == "pending"
            await hook.wait_for(lambda seen: len(seen) == 3)
            everything = await http.post(
                f"/api/v1/webhook-endpoints/{made['id']}/redeliver",
                json={"since": before.isoformat()},
                headers=headers,
            )
            assert everything.status_code == 202 and everything.json() == {"redelivering": 2}
            events = await hook.wait_for(lambda seen: len(seen) == 5)
        too_early = await http.post(
            f"/api/v1/webhook-endpoints/{made['id']}/redeliver",
            json={"since": "0001-01-01T00:00:00+14:00"},
            headers=headers,
        )
        assert too_early.status_code == 422 and too_early.json()["error"]["param"] == "since"
        ids = [headers_sent["webhook-id"] for headers_sent, _ in hook.received]
        assert ids[2] == ids[1]  # a redelivery keeps its webhook-id: the receiver drops the copy
        assert ids[3:] == ids[:2]
        assert [e["data"]["amount"] for e in events] == [101, 102, 102, 101, 102]


async def test_a_rotated_secret_signs_with_both_during_the_overlap(
    http, sessions, services, people
) -> None:
    """Also: an endpoint named by a host name is resolved once and the request goes to the
    address checked, with the name as its Host."""
    headers = await admin_key(sessions)
    async with receiver() as hook:
        assert hook.server is not None
        by_name = hook.url.replace("127.0.0.1", "localhost")
        async with endpoint(http, headers, by_name, event_types=["tip.sent"]) as made:
            rotated = await http.post(
                f"/api/v1/webhook-endpoints/{made['id']}/rotate-secret",
                json={"overlap_seconds": 3600},
                headers=headers,
            )
            assert rotated.status_code == 200
            new = rotated.json()["secret"]
            assert new != made["secret"] and rotated.json()["previous_secret_until"]
            answer = await http.post(
                "/api/v1/tips",
                json={"creator_id": people.creator, "amount": 100, "currency": "NGN"},
                headers={**auth(people.fan, "fan"), **key()},
            )
            assert answer.status_code == 201
            async with running_worker(services):
                await hook.wait_for(lambda seen: len(seen) == 1)
        sent_headers, body = hook.received[0]
        assert len(sent_headers["webhook-signature"].split()) == 2
        verified(made["secret"], sent_headers, body)  # a receiver not yet switched
        verified(new, sent_headers, body)  # one that switched
        assert sent_headers["host"] == f"localhost:{hook.server.port}"


async def test_an_endpoint_failing_for_days_is_disabled_and_the_admins_are_told(
    http, sessions, services, uid, people
) -> None:
    admin = uid("admin")
    await create_user(sessions, admin, Role.ADMIN)
    headers = await admin_key(sessions)
    config = WebhookConfig(retry_schedule=(0.05,) * 50, allow_private=True, disable_after=0.3)
    async with (
        receiver(failing=10_000) as hook,
        endpoint(http, headers, hook.url, event_types=["tip.sent"]) as made,
    ):
        answer = await http.post(
            "/api/v1/tips",
            json={"creator_id": people.creator, "amount": 100, "currency": "NGN"},
            headers={**auth(people.fan, "fan"), **key()},
        )
        assert answer.status_code == 201
        async with running_worker(services, config):
            for _ in range(200):
                shown = await http.get(f"/api/v1/webhook-endpoints/{made['id']}", headers=headers)
                if not shown.json()["enabled"]:
                    break
                await asyncio.sleep(0.05)
        assert shown.json()["enabled"] is False and shown.json()["disabled_reason"]
        async with sessions() as session:
            told = (
                await session.execute(
                    text("SELECT data FROM events WHERE user_id = :u AND type = :t"),
                    {"u": admin, "t": "webhook_endpoint.disabled"},
                )
            ).scalar_one()
        assert told["endpoint_id"] == made["id"] and told["url"] == hook.url
        # disabled: new events make no deliveries; enabling again takes them
        refused_before = hook.refused
        await http.post(
            "/api/v1/tips",
            json={"creator_id": people.creator, "amount": 100, "currency": "NGN"},
            headers={**auth(people.fan, "fan"), **key()},
        )
        log = await http.get(f"/api/v1/webhook-endpoints/{made['id']}/deliveries", headers=headers)
        assert len(log.json()["data"]) == 1
        back = await http.patch(
            f"/api/v1/webhook-endpoints/{made['id']}", json={"enabled": True}, headers=headers
        )
        assert back.json()["enabled"] is True and back.json()["failing_since"] is None
        assert hook.refused == refused_before


async def test_two_apps_never_get_each_others_events(http, sessions, services, people, uid) -> None:
    other = f"app-{uuid.uuid4().hex[:10]}"
    async with unit_of_work(sessions) as uow:
        await create_app(uow.session, other, "Other")
    theirs = await admin_key(sessions, other)
    ours = await admin_key(sessions)
    b_user = uid("b-user")
    made_user = await http.put(f"/api/v1/users/{b_user}", json={}, headers=theirs)
    assert made_user.status_code == 201
    async with (
        receiver() as their_hook,
        receiver() as our_hook,
        endpoint(http, theirs, their_hook.url) as their_endpoint,
        endpoint(http, ours, our_hook.url, event_types=["tip.sent"]) as our_endpoint,
    ):
        tip = await http.post(
            "/api/v1/tips",
            json={"creator_id": people.creator, "amount": 100, "currency": "NGN"},
            headers={**auth(people.fan, "fan"), **key()},
        )
        assert tip.status_code == 201
        async with running_worker(services):
            await our_hook.wait_for(lambda seen: len(seen) == 1)
            await asyncio.sleep(0.5)
        assert their_hook.received == []
        # and the other way round: nothing of B's users reaches the default app's endpoint
        assert all(e["app_id"] == "default" for e in our_hook.events())
        # each app sees only its own endpoints and deliveries
        listed = await http.get("/api/v1/webhook-endpoints", headers=theirs)
        assert [e["id"] for e in listed.json()["data"]] == [their_endpoint["id"]]
        foreign = await http.get(
            f"/api/v1/webhook-endpoints/{our_endpoint['id']}/deliveries", headers=theirs
        )
        assert foreign.status_code == 404
        delivery = (
            await http.get(
                f"/api/v1/webhook-endpoints/{our_endpoint['id']}/deliveries", headers=ours
            )
        ).json()["data"][0]
        stolen = await http.get(f"/api/v1/webhook-deliveries/{delivery['id']}", headers=theirs)
        assert stolen.status_code == 404


async def test_private_and_loopback_targets_are_refused_in_production(
    services: Services, sessions
) -> None:
    server = hub_server(make_settings(services, webhook_allow_private_targets=False))
    await server.start()
    headers = await admin_key(sessions)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for url in (
                "http://example.com/hook",
                "https://127.0.0.1/hook",
                "https://10.1.2.3/hook",
                "https://[::1]/hook",
                "https://localhost/hook",
                "https://user:pw@example.com/hook",
                "https://exa mple.com/",
            ):
                refused = await client.post(
                    "/api/v1/webhook-endpoints", json={"url": url}, headers=headers
                )
                assert refused.status_code == 422, url
                assert refused.json()["error"]["param"] == "url"
    finally:
        await server.stop()


async def test_a_name_that_resolves_to_a_private_address_is_refused_when_sent(
    http, sessions, services, people
) -> None:
    """The guard at send time: a name whose address is private (this machine's own name) is
    not sent to by a production worker, whatever it resolved to when the endpoint was made."""
    name = socket.gethostname()
    headers = await admin_key(sessions)
    production = WebhookConfig(retry_schedule=(60,), allow_private=False)
    async with endpoint(http, headers, f"https://{name}/hook", event_types=["tip.sent"]) as made:
        answer = await http.post(
            "/api/v1/tips",
            json={"creator_id": people.creator, "amount": 100, "currency": "NGN"},
            headers={**auth(people.fan, "fan"), **key()},
        )
        assert answer.status_code == 201
        async with running_worker(services, production):
            for _ in range(100):
                log = await http.get(
                    f"/api/v1/webhook-endpoints/{made['id']}/deliveries", headers=headers
                )
                row = log.json()["data"][0]
                if row["last_attempt"] is not None:
                    break
                await asyncio.sleep(0.05)
        attempt = row["last_attempt"]
        assert attempt is not None and attempt["status_code"] is None
        assert "private or loopback" in attempt["error"] or "cannot resolve" in attempt["error"]


async def test_a_names_addresses_are_kept_a_while_and_an_address_needs_no_lookup() -> None:
    """The send-time guard resolves a name at most every RESOLVED_TTL seconds (the lookup runs
    in a thread and cost a quarter of the sender's CPU) and an address not at all."""
    from jobs import webhooks as sender

    sender._RESOLVED.clear()
    assert await sender._addresses("127.0.0.1", 80) == [ipaddress.ip_address("127.0.0.1")]
    assert sender._RESOLVED == {}
    first = await sender._addresses("localhost", 80)
    assert first and all(address.is_loopback for address in first)
    kept, expires = sender._RESOLVED[("localhost", 80)]
    assert kept is first and expires > time.monotonic()
    assert await sender._addresses("localhost", 80) is first
    sender._RESOLVED[("localhost", 80)] = (first, time.monotonic() - 1)  # expired: looked up again
    assert await sender._addresses("localhost", 80) is not first
