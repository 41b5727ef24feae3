"""Web Push of creators' tip alerts: a real push service on 127.0.0.1 (aiohttp) checks the VAPID
token and decrypts what a live hub and a real burst worker send; browsers are key pairs made
here, as a browser makes them."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import http_ece
import httpx
import jwt
import pytest
from aiohttp import web
from arq.connections import ArqRedis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import text
from sqlalchemy.engine import make_url

from hub.auth import issue_token
from hub.cli import main as hub_main
from hub.dev import _vapid_env
from hub.embedded import free_port
from hub.settings import Settings, SettingsError, load_settings
from hub.vapid import generate, load_private_key, public_key_of
from jobs.push import NAME as PUSH_JOB
from jobs.push import PushConfig, endpoint_problem
from ledger.accounts import Role
from ledger.db import unit_of_work
from ledger.migrate import downgrade, upgrade
from ledger.money import Money
from ledger.push import MAX_PER_USER, list_subscriptions
from tests.conftest import (
    JWT_SECRET,
    KEEPALIVE,
    LiveServer,
    Services,
    SocketProbe,
    auth,
    create_user,
    hub_server,
    make_settings,
    run_burst_worker,
    sandbox_server,
    scratch_database,
    token,
)

SUBJECT = "mailto:push-test@hub.test"
HOSTS = "127.0.0.1,push.example.test"
VAPID_PRIVATE, VAPID_PUBLIC = generate()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@dataclass
class Pushed:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class PushService:
    """A push service on 127.0.0.1: records every POST and answers the next status scripted
    for its path (201 when none is)."""

    origin: str = ""
    received: list[Pushed] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.received.append(Pushed(request.path, headers, body))
        statuses = self.script.get(request.path) or [201]
        status = statuses.pop(0) if len(statuses) > 1 else statuses[0]
        return web.Response(status=status)

    def at(self, path: str) -> list[Pushed]:
        return [pushed for pushed in self.received if pushed.path == path]


@pytest.fixture
async def push_service() -> AsyncIterator[PushService]:
    service = PushService()
    app = web.Application()
    app.router.add_post("/push/{token}", service.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    service.origin = f"http://127.0.0.1:{port}"
    try:
        yield service
    finally:
        await runner.cleanup()


class Browser:
    """The browser's side of a subscription: an ECDH P-256 key pair and 16 random auth bytes."""

    def __init__(self, service: PushService) -> None:
        self.path = f"/push/{uuid.uuid4().hex}"
        self.endpoint = service.origin + self.path
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.auth = os.urandom(16)

    def subscription(self) -> dict[str, Any]:
        point = self.key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64(point), "auth": b64(self.auth)},
        }

    def decrypt(self, body: bytes) -> Any:
        plain = http_ece.decrypt(
            body, private_key=self.key, auth_secret=self.auth, version="aes128gcm"
        )
        return json.loads(plain)


@dataclass(frozen=True)
class PushStack:
    hub: LiveServer
    sandbox: LiveServer


@pytest.fixture(scope="module")
async def push_stack(services: Services) -> AsyncIterator[PushStack]:
    """A hub with a VAPID key and push services on 127.0.0.1 allowed, and its own sandbox
    provider (whose webhooks settle card tips on this hub)."""
    hub_port, sandbox_port = free_port(), free_port()
    sandbox = sandbox_server(hub_port, sandbox_port)
    sandbox_url = sandbox.url
    settings = make_settings(
        services,
        sandbox_url,
        vapid_private_key=VAPID_PRIVATE,
        vapid_subject=SUBJECT,
        push_endpoint_hosts=HOSTS,
    )
    hub = hub_server(settings, hub_port)
    await sandbox.start()
    await hub.start()
    yield PushStack(hub, sandbox)
    await hub.stop()
    await sandbox.stop()


@pytest.fixture
def push_hub(push_stack: PushStack) -> LiveServer:
    return push_stack.hub


@pytest.fixture
async def client(push_hub: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=push_hub.url, timeout=10, limits=KEEPALIVE) as http:
        yield http


async def run_worker(services: Services) -> Any:
    config = PushConfig(load_private_key(VAPID_PRIVATE), SUBJECT, tuple(HOSTS.split(",")))
    return await run_burst_worker(services, push=config)


@dataclass
class Pair:
    fan: str
    creator: str


@pytest.fixture
async def pair(sessions, uid: Callable[[str], str]) -> Pair:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(100_000, "NGN"))
    return Pair(fan, creator)


async def subscribe(client: httpx.AsyncClient, user: str, browser: Browser) -> httpx.Response:
    return await client.post(
        "/api/v1/push/subscriptions", json=browser.subscription(), headers=auth(user, "creator")
    )


async def tip(
    client: httpx.AsyncClient,
    pair: Pair,
    amount: int,
    message: str | None = None,
    name: str | None = None,
) -> int:
    fan_token = issue_token(JWT_SECRET, pair.fan, Role.FAN, 600, name=name)
    response = await client.post(
        "/api/v1/tips",
        json={"creator_id": pair.creator, "amount": amount, "currency": "NGN", "message": message},
        headers={"Authorization": f"Bearer {fan_token}", "Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text
    tip_id: int = response.json()["id"]
    return tip_id


def check_vapid(pushed: Pushed, service: PushService) -> dict[str, Any]:
    """The request carries a VAPID token signed by the hub's key, for this push service."""
    match = re.fullmatch(
        r"vapid t=([^,\s]+),\s*k=([A-Za-z0-9_-]+)", pushed.headers["authorization"]
    )
    assert match, pushed.headers["authorization"]
    signed, key = match.groups()
    assert key == VAPID_PUBLIC
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64(key))
    claims: dict[str, Any] = jwt.decode(
        signed, public, algorithms=["ES256"], audience=service.origin
    )  # raises on a bad signature, another audience or an expired token
    assert claims["sub"] == SUBJECT
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600
    return claims


async def test_a_tip_alert_reaches_the_creators_browser_signed_and_encrypted(
    client, pair: Pair, push_service: PushService, services
) -> None:
    browser = Browser(push_service)
    saved = await subscribe(client, pair.creator, browser)
    assert saved.status_code == 201, saved.text
    assert saved.json()["endpoint"] == browser.endpoint
    assert set(saved.json()) == {"id", "endpoint", "created_at"}
    message = "<script>alert('hi')</script> great stream & thanks"
    tip_id = await tip(client, pair, 12_345, message, name="Ada L.")

    await run_worker(services)

    [pushed] = push_service.at(browser.path)
    check_vapid(pushed, push_service)
    assert pushed.headers["content-encoding"] == "aes128gcm"
    assert pushed.headers["ttl"] == "3600"
    assert pushed.headers["urgency"] == "high"
    payload = browser.decrypt(pushed.body)
    assert payload == {
        "type": "tip.received",
        "tip": {
            "id": tip_id,
            "name": "Ada L.",
            "amount": 12_345,
            "currency": "NGN",
            "message": message,
        },
        "url": "/app/creator",
    }
    # At least once: the same job enqueued again changes nothing (arq keeps its id), and run
    # again under another id it skips the browser that took the alert.
    queue = ArqRedis.from_url(services.redis_url)
    try:
        assert await queue.enqueue_job(PUSH_JOB, tip_id, _job_id=f"{PUSH_JOB}:{tip_id}") is None
        await queue.enqueue_job(PUSH_JOB, tip_id, _job_id=f"{PUSH_JOB}:{tip_id}:again")
    finally:
        await queue.aclose()
    await run_worker(services)
    assert len(push_service.at(browser.path)) == 1


async def test_a_card_tip_settled_by_its_webhook_is_pushed(
    client, uid, sessions, push_service: PushService, push_stack: PushStack, services
) -> None:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    browser = Browser(push_service)
    assert (await subscribe(client, creator, browser)).status_code == 201
    started = await client.post(
        "/api/v1/tips",
        json={
            "creator_id": creator,
            "amount": 8_000,
            "currency": "NGN",
            "message": "by card",
            "source": "card",
            "provider": "sandbox",
        },
        headers={**auth(fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
    )
    assert started.status_code == 202, started.text
    await run_worker(services)
    assert push_service.at(browser.path) == []  # nothing before the money moved
    reference = started.json()["payment"]["reference"]
    async with httpx.AsyncClient(base_url=push_stack.sandbox.url, timeout=30) as sandbox:
        delivered = await sandbox.post(f"/_sandbox/checkout/{reference}/deliver", json={})
    assert delivered.json()["statuses"] == [200], delivered.text
    await run_worker(services)
    [pushed] = push_service.at(browser.path)
    alert = browser.decrypt(pushed.body)["tip"]
    assert (alert["amount"], alert["message"], alert["name"]) == (8_000, "by card", "Someone")


async def test_a_fan_without_a_name_is_someone_and_no_message_is_null(
    client, pair: Pair, push_service: PushService, services
) -> None:
    browser = Browser(push_service)
    assert (await subscribe(client, pair.creator, browser)).status_code == 201
    tip_id = await tip(client, pair, 500)
    await run_worker(services)
    [pushed] = push_service.at(browser.path)
    assert browser.decrypt(pushed.body)["tip"] == {
        "id": tip_id,
        "name": "Someone",
        "amount": 500,
        "currency": "NGN",
        "message": None,
    }


async def test_no_push_while_a_page_of_the_creator_is_open(
    client, pair: Pair, push_service: PushService, services, push_hub: LiveServer, sockets
) -> None:
    browser = Browser(push_service)
    assert (await subscribe(client, pair.creator, browser)).status_code == 201
    page: SocketProbe = sockets()
    await page.connect(push_hub.url, {"token": token(pair.creator, "creator")})
    await page.wait_for("recovered")
    first = await tip(client, pair, 1_000, "while open")
    await page.wait_for("tip.received")  # the open page shows it
    await run_worker(services)
    assert push_service.at(browser.path) == []

    await page.close()  # the page is gone: the next tip is pushed
    await until_offline(client, pair.creator)
    second = await tip(client, pair, 2_000, "while closed")
    await run_worker(services)
    [pushed] = push_service.at(browser.path)
    assert browser.decrypt(pushed.body)["tip"]["id"] == second != first


async def until_offline(client: httpx.AsyncClient, user: str) -> None:
    """Wait until the cluster counts no connection of `user` (the server handles a disconnect
    after the client has left)."""

    async def connections() -> int:
        response = await client.get(
            "/api/v1/presence", params={"user_id": user}, headers=auth("ops-admin", "admin")
        )
        count: int = response.json()["user"]["connections"]
        return count

    for _ in range(200):  # bounded
        if await connections() == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{user} is still counted as connected")


async def test_a_gone_subscription_is_deleted_and_the_others_still_get_the_alert(
    client, pair: Pair, push_service: PushService, services, sessions
) -> None:
    gone, alive = Browser(push_service), Browser(push_service)
    for browser in (gone, alive):
        assert (await subscribe(client, pair.creator, browser)).status_code == 201
    push_service.script[gone.path] = [410]
    await tip(client, pair, 700)
    await run_worker(services)

    assert len(push_service.at(gone.path)) == 1
    assert len(push_service.at(alive.path)) == 1
    async with sessions() as session:
        left = await list_subscriptions(session, pair.creator)
    assert [s.endpoint for s in left] == [alive.endpoint]


async def test_a_busy_push_service_is_retried_and_only_the_missed_browser_gets_it_again(
    client, pair: Pair, push_service: PushService, services, sessions
) -> None:
    busy, fine = Browser(push_service), Browser(push_service)
    for browser in (busy, fine):
        assert (await subscribe(client, pair.creator, browser)).status_code == 201
    push_service.script[busy.path] = [503, 201]
    tip_id = await tip(client, pair, 900)
    await run_worker(services)  # burst mode waits for the deferred retry

    tries = push_service.at(busy.path)
    assert len(tries) == 2
    assert all(busy.decrypt(t.body)["tip"]["id"] == tip_id for t in tries)
    assert len(push_service.at(fine.path)) == 1  # took it the first time: not sent again
    async with sessions() as session:
        assert len(await list_subscriptions(session, pair.creator)) == 2


async def test_other_refusals_drop_the_alert_but_keep_the_subscription(
    client, pair: Pair, push_service: PushService, services, sessions
) -> None:
    browser = Browser(push_service)
    assert (await subscribe(client, pair.creator, browser)).status_code == 201
    push_service.script[browser.path] = [400]
    await tip(client, pair, 300)
    await run_worker(services)
    assert len(push_service.at(browser.path)) == 1  # not retried
    async with sessions() as session:
        assert len(await list_subscriptions(session, pair.creator)) == 1


async def test_a_stored_endpoint_that_cannot_be_sent_is_forgotten_not_retried(
    client, pair: Pair, push_service: PushService, services, sessions
) -> None:
    """A subscription stored before endpoints were checked for control characters (finding 6
    of issue 12): the job drops it for good and still alerts the creator's other browser."""
    browser = Browser(push_service)
    assert (await subscribe(client, pair.creator, browser)).status_code == 201
    broken = browser.subscription()
    async with unit_of_work(sessions) as uow:
        await uow.session.execute(
            text(
                "INSERT INTO push_subscriptions (user_id, endpoint, p256dh, auth) "
                "VALUES (:user, :endpoint, :p256dh, :auth)"
            ),
            {
                "user": pair.creator,
                "endpoint": f"{push_service.origin}/push/\t{uuid.uuid4().hex}",
                "p256dh": broken["keys"]["p256dh"],
                "auth": broken["keys"]["auth"],
            },
        )
    await tip(client, pair, 300)
    worker = await run_worker(services)
    assert (worker.jobs_failed, worker.jobs_retried) == (0, 0)  # dropped, not retried
    assert len(push_service.at(browser.path)) == 1
    async with sessions() as session:
        left = await list_subscriptions(session, pair.creator)
    assert [s.endpoint for s in left] == [browser.endpoint]


def subscription(endpoint: str, p256dh: bytes | None = None, secret: bytes | None = None) -> dict:
    if p256dh is None:
        p256dh = (
            ec.generate_private_key(ec.SECP256R1())
            .public_key()
            .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
    return {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": b64(p256dh), "auth": b64(os.urandom(16) if secret is None else secret)},
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (subscription("http://push.example.test/p/1"), "endpoint"),  # listed, but not loopback
        (subscription("https://evil.example.org/p/1"), "endpoint"),  # not listed
        (subscription("http://127.0.0.2:9/p/1"), "endpoint"),  # loopback, but not listed
        (subscription("https://user:pw@push.example.test/p/1"), "endpoint"),
        (subscription("ftp://push.example.test/p/1"), "endpoint"),
        (subscription("https://push.example.test/p/1", secret=os.urandom(8)), "keys.auth"),
        (subscription("https://push.example.test/p/1", p256dh=os.urandom(32)), "keys.p256dh"),
        (subscription("https://push.example.test/p/1", p256dh=b"\x04" + bytes(64)), "keys.p256dh"),
        ({"endpoint": "https://push.example.test/p/1"}, "keys"),
        # urlsplit strips tabs and line breaks, then the HTTP client refuses the URL for good
        (subscription("https://push.example.test/p/\t1"), "endpoint"),
        (subscription("https://push.exa\r\nmple.test/p/1"), "endpoint"),
        (subscription("https://push.example.test/p/1\n"), "endpoint"),
        (subscription("https://push.example.test/p/1 2"), "endpoint"),
        (subscription("https://push.example.test/p/\x001"), "endpoint"),
    ],
)
async def test_bad_subscriptions_are_refused(client, uid, body, param) -> None:
    response = await client.post(
        "/api/v1/push/subscriptions", json=body, headers=auth(uid("creator"), "creator")
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["type"] == "invalid_request"
    assert response.json()["error"]["param"] == param


async def test_a_listed_https_push_service_is_accepted_for_any_role(client, uid) -> None:
    body = subscription(f"https://push.example.test/p/{uuid.uuid4().hex}")
    response = await client.post(
        "/api/v1/push/subscriptions", json=body, headers=auth(uid("fan"), "fan")
    )
    assert response.status_code == 201, response.text
    unauthenticated = await client.post("/api/v1/push/subscriptions", json=body)
    assert unauthenticated.status_code == 401


def test_the_default_push_services_and_wildcards() -> None:
    hosts = Settings(_env_file=None).push_endpoint_hosts  # type: ignore[call-arg]
    allowed = [
        "https://fcm.googleapis.com/fcm/send/abc",
        "https://updates.push.services.mozilla.com/wpush/v2/abc",
        "https://web.push.apple.com/QGx",
        "https://wns2-par02p.notify.windows.com/w/?token=abc",
    ]
    refused = [
        "http://fcm.googleapis.com/fcm/send/abc",
        "https://notify.windows.com.evil.test/w/",
        "https://evilnotify.windows.com/w/",
        "https://127.0.0.1/push",
        "http://localhost:8000/push",
        "https://169.254.169.254/latest/meta-data",
    ]
    assert [e for e in allowed if endpoint_problem(e, hosts) is not None] == []
    assert [e for e in refused if endpoint_problem(e, hosts) is None] == []


async def test_push_config_is_public_and_says_whether_push_is_on(client, http) -> None:
    on = await client.get("/api/v1/push/config")
    assert on.status_code == 200
    assert on.json() == {"enabled": True, "public_key": VAPID_PUBLIC}
    assert len(unb64(VAPID_PUBLIC)) == 65
    off = await http.get("/api/v1/push/config")  # the session's hub has no VAPID key
    assert off.json() == {"enabled": False, "public_key": None}


async def test_subscribing_without_a_vapid_key_is_push_disabled(http, uid) -> None:
    response = await http.post(
        "/api/v1/push/subscriptions",
        json=subscription("https://fcm.googleapis.com/fcm/send/x"),
        headers=auth(uid("creator"), "creator"),
    )
    assert response.status_code == 409
    assert response.json()["error"]["type"] == "push_disabled"


async def test_unsubscribe_deletes_only_the_callers_own(
    client, uid, sessions, push_service: PushService
) -> None:
    owner, other = uid("creator"), uid("creator")
    browser = Browser(push_service)
    assert (await subscribe(client, owner, browser)).status_code == 201
    body = {"endpoint": browser.endpoint}

    async def unsubscribe(user: str) -> httpx.Response:
        return await client.request(
            "DELETE", "/api/v1/push/subscriptions", json=body, headers=auth(user, "creator")
        )

    assert (await subscribe(client, other, Browser(push_service))).status_code == 201
    refused = await unsubscribe(other)
    assert refused.status_code == 404
    assert refused.json()["error"]["type"] == "push_subscription_not_found"
    assert (await unsubscribe(owner)).status_code == 204
    assert (await unsubscribe(owner)).status_code == 404
    async with sessions() as session:
        assert await list_subscriptions(session, owner) == []
        assert len(await list_subscriptions(session, other)) == 1


async def test_the_same_browser_moves_to_whoever_subscribes_it_last(
    client, uid, sessions, push_service: PushService
) -> None:
    first, second = uid("creator"), uid("creator")
    browser = Browser(push_service)
    one = await subscribe(client, first, browser)
    again = await subscribe(client, second, browser)
    assert again.status_code == 201 and again.json()["id"] == one.json()["id"]
    async with sessions() as session:
        assert await list_subscriptions(session, first) == []
        [moved] = await list_subscriptions(session, second)
    assert moved.endpoint == browser.endpoint


async def test_a_user_keeps_the_newest_ten_subscriptions(
    client, uid, sessions, push_service: PushService
) -> None:
    user = uid("creator")
    browsers = [Browser(push_service) for _ in range(MAX_PER_USER + 2)]
    for browser in browsers:
        assert (await subscribe(client, user, browser)).status_code == 201
    async with sessions() as session:
        kept = await list_subscriptions(session, user)
    assert [s.endpoint for s in kept] == [b.endpoint for b in browsers[2:]]


def test_vapid_settings_are_checked_at_start() -> None:
    key = load_private_key(VAPID_PRIVATE)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    assert public_key_of(pem) == VAPID_PUBLIC
    assert load_settings(_env_file=None, vapid_private_key=pem).vapid_private_key is not None
    assert load_settings(_env_file=None, vapid_private_key="").vapid_private_key is None
    for bad in ("not a key!", b64(os.urandom(31)), b64(b"\xff" * 32), "-----BEGIN junk"):
        with pytest.raises(SettingsError, match="HUB_VAPID_PRIVATE_KEY"):
            load_settings(_env_file=None, vapid_private_key=bad)
    with pytest.raises(SettingsError, match="HUB_VAPID_SUBJECT"):
        load_settings(_env_file=None, vapid_subject="admin@example.com")
    with pytest.raises(SettingsError, match="HUB_PUSH_ENDPOINT_HOSTS"):
        load_settings(_env_file=None, push_endpoint_hosts="https://fcm.googleapis.com")
    hosts = load_settings(_env_file=None, push_endpoint_hosts="Push.Example.test, 127.0.0.1")
    assert hosts.push_endpoint_hosts == ("push.example.test", "127.0.0.1")


def test_hub_push_keys_prints_a_usable_pair(capsys) -> None:
    assert hub_main(["push", "keys"]) == 0
    out = capsys.readouterr().out
    private = re.search(r"^HUB_VAPID_PRIVATE_KEY=(\S+)$", out, re.MULTILINE)
    public = re.search(r"applicationServerKey.*: (\S+)$", out, re.MULTILINE)
    assert private and public
    assert public_key_of(private.group(1)) == public.group(1)


def test_hub_dev_keeps_one_vapid_key(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, home=tmp_path / "home")  # type: ignore[call-arg]
    first = _vapid_env(settings)["HUB_VAPID_PRIVATE_KEY"]
    assert _vapid_env(settings)["HUB_VAPID_PRIVATE_KEY"] == first
    assert (tmp_path / "home" / "vapid.json").stat().st_mode & 0o777 == 0o600
    load_private_key(first)
    configured = Settings(  # type: ignore[call-arg]
        _env_file=None, home=tmp_path / "home", vapid_private_key=VAPID_PRIVATE
    )
    assert _vapid_env(configured) == {}


async def test_the_migration_downgrades_and_upgrades(services: Services) -> None:
    url = make_url(services.database_url)
    async with scratch_database(services, "hub_push") as scratch:
        name = make_url(scratch).database
        await asyncio.to_thread(upgrade, scratch)
        assert await _has_table(url, name)
        await asyncio.to_thread(downgrade, scratch, "0007")
        assert not await _has_table(url, name)
        await asyncio.to_thread(upgrade, scratch)
        assert await _has_table(url, name)


async def asyncpg_connect(url: Any, database: str) -> Any:
    import asyncpg

    return await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password or None,
        database=database,
    )


async def _has_table(url: Any, database: str) -> bool:
    connection = await asyncpg_connect(url, database)
    try:
        found = await connection.fetchval("SELECT to_regclass('push_subscriptions') IS NOT NULL")
    finally:
        await connection.close()
    return bool(found)
