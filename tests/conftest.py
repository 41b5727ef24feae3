"""Real PostgreSQL and Redis for the whole run (embedded, or HUB_TEST_* URLs), a live hub server
on a free port, and helpers for tokens, users and Socket.IO clients.

Isolation: every test makes its own users (unique ids), so tests share the database without
seeing each other's money; assertions on shared accounts (the platform fee) use deltas.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import subprocess
import tempfile
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import socketio
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.app import create_app
from hub.auth import issue_token
from hub.embedded import Embedded, free_port
from hub.runtime import Runtime
from hub.serving import uvicorn_options
from hub.settings import Settings
from ledger.accounts import Role, ensure_user
from ledger.db import make_engine, make_sessions, unit_of_work
from ledger.funding import fund_wallet_for_development
from ledger.migrate import upgrade
from ledger.money import Money
from sandbox.app import SandboxConfig, create_sandbox_app
from tests import watchdog
from tests.response_check import VIOLATIONS, ResponseCheck

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
# .ci/run installs Debian's nginx-light where it is missing; /usr/sbin may be off a user's PATH.
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
JWT_SECRET = "test-secret-" + "x" * 40
PAYSTACK_SECRET = "sk_test_paystack_" + "p" * 24
SECRETS_KEY = base64.urlsafe_b64encode(b"the tests' key for app secrets!!").decode()
STRIPE_SECRET = "sk_test_stripe_" + "s" * 24
STRIPE_WEBHOOK_SECRET = "whsec_stripe" + "w" * 24
SANDBOX_WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"sandbox-signing-key-0123456789").decode()
UNLIMITED = "1000000/minute"
FEE_BPS = 1000
# The test clients drop idle connections after 2 s, before uvicorn closes them (after 5 s): with
# equal timeouts a request may go out on a connection the server is closing (httpx.ReadError).
KEEPALIVE = httpx.Limits(keepalive_expiry=2.0)
FAST_POSTGRES = ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(watchdog, "hub-watchdog")


@dataclass(frozen=True)
class Services:
    database_url: str
    redis_url: str


@pytest.fixture(scope="session")
def services() -> Iterator[Services]:
    database_url = os.environ.get("HUB_TEST_DATABASE_URL")
    redis_url = os.environ.get("HUB_TEST_REDIS_URL")
    embedded = None
    home = Path(tempfile.mkdtemp(prefix="hub-test-"))
    if not database_url or not redis_url:
        embedded = Embedded(home, postgres_options=FAST_POSTGRES, redis_persistent=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            database_url = database_url or embedded.database_url()
            redis_url = redis_url or embedded.redis_url()
        watchdog.on_hang(embedded.stop)
    settings = Settings(database_url=database_url, redis_url=redis_url)
    assert settings.database_url and settings.redis_url
    upgrade(settings.database_url)
    try:
        yield Services(settings.database_url, settings.redis_url)
    finally:
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(home, ignore_errors=True)


def make_settings(services: Services, sandbox_url: str | None = None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        # Bursts of 100 concurrent requests on a loaded 2-core machine: wait for a connection
        # rather than answer 503 (that path has its own test, with PostgreSQL stopped).
        "database_pool_acquire_timeout": 60.0,
        # In-process hubs share the test process: its collector stays as it is
        # (tests/hub/test_health.py turns this on for one hub).
        "gc_freeze": False,
        "rate_limit_payments": UNLIMITED,
        "rate_limit_transfers": UNLIMITED,
        "rate_limit_server": UNLIMITED,
        "rate_limit_webhooks": UNLIMITED,
        "database_url": services.database_url,
        "redis_url": services.redis_url,
        "jwt_secret": JWT_SECRET,
        "secrets_key": SECRETS_KEY,
        "platform_fee_bps": FEE_BPS,
        "currencies": "NGN,USD",
        "host": "127.0.0.1",
        "log_level": "warning",
        # the tests' webhook receivers listen on 127.0.0.1
        "webhook_allow_private_targets": True,
    }
    if sandbox_url is not None:
        values.update(
            paystack_secret_key=PAYSTACK_SECRET,
            paystack_base_url=f"{sandbox_url}/paystack",
            stripe_secret_key=STRIPE_SECRET,
            stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
            stripe_base_url=f"{sandbox_url}/stripe",
            standard_webhook_secrets={"sandbox": SANDBOX_WEBHOOK_SECRET},
            sandbox_url=sandbox_url,
        )
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_runtime(settings: Settings) -> Runtime:
    assert settings.database_url and settings.redis_url and settings.jwt_secret
    return Runtime(
        settings,
        settings.database_url,
        settings.redis_url,
        settings.jwt_secret.get_secret_value(),
        None,
    )


@pytest.fixture(scope="session")
async def engine(services: Services) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(services.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return make_sessions(engine)


class LiveServer:
    """A real uvicorn server in this process, on a free port of 127.0.0.1."""

    def __init__(self, app: Any, port: int | None = None, **options: Any) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        options.setdefault("lifespan", "on")
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", **options
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve())
        for _ in range(200):
            if self.server.started:
                return
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.025)
        raise RuntimeError("live server did not start")

    async def stop(self, within: float = 60.0) -> None:
        """Stop as SIGTERM would. A server still not stopped after `within` seconds fails the
        caller, saying what it was waiting for (every task's stack), instead of hanging the
        suite."""
        self.server.should_exit = True
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), within)
        except TimeoutError:
            stuck = watchdog.describe_tasks()
            self.server.force_exit = True
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)
            raise RuntimeError(
                f"the server on {self.url} did not stop within {within:.0f} s "
                f"({len(self.server.server_state.connections)} connections open); "
                f"tasks:\n{stuck}"
            ) from None


def hub_of_app(app: Any) -> Any:
    """The running Hub of an app made by create_app: its HTTP app's state, under the edge's
    middleware and the Socket.IO app."""
    while not hasattr(app, "other_asgi_app"):
        app = app.app
    return app.other_asgi_app.state.hub


def hub_server(settings: Settings, port: int | None = None) -> LiveServer:
    """The hub served as `hub serve` serves it (hub.serving's options)."""
    app = ResponseCheck(create_app(make_runtime(settings)))  # answers match their models
    return LiveServer(app, port, **uvicorn_options(settings))


@dataclass(frozen=True)
class Stack:
    hub: LiveServer
    sandbox: LiveServer


def sandbox_server(hub_port: int, sandbox_port: int) -> LiveServer:
    """The sandbox provider on `sandbox_port`, sending its webhooks to a hub on `hub_port`."""
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    return LiveServer(
        create_sandbox_app(
            SandboxConfig(
                paystack_secret_key=PAYSTACK_SECRET,
                stripe_secret_key=STRIPE_SECRET,
                stripe_webhook_secret=STRIPE_WEBHOOK_SECRET,
                sandbox_webhook_secret=SANDBOX_WEBHOOK_SECRET,
                hub_url=f"http://127.0.0.1:{hub_port}",
                public_url=sandbox_url,
            )
        ),
        sandbox_port,
    )


@pytest.fixture(scope="session")
async def stack(services: Services) -> AsyncIterator[Stack]:
    """The hub and the sandbox provider, each sending to the other on 127.0.0.1."""
    hub_port, sandbox_port = free_port(), free_port()
    sandbox = sandbox_server(hub_port, sandbox_port)
    sandbox_url = sandbox.url
    # port: the hub builds providers' return links from it ("Back to the merchant")
    hub = hub_server(make_settings(services, sandbox_url, port=hub_port), hub_port)
    await sandbox.start()
    await hub.start()
    yield Stack(hub, sandbox)
    await hub.stop()
    await sandbox.stop()


async def run_burst_worker(services: Services, **options: Any) -> Any:
    """A real arq worker in burst mode: it runs every job queued in Redis, then stops; returns
    it (its counts of jobs). `options` go to `build_worker` (providers, smtp, push, …)."""
    from jobs.worker import build_worker

    worker = build_worker(
        database_url=services.database_url,
        redis_url=services.redis_url,
        burst=True,
        handle_signals=False,
        **options,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    return worker


async def run_jobs(services: Services, stack: Stack) -> None:
    """A burst worker with providers that reach the sandbox (payouts are sent, refunds made)."""
    from hub.runtime import build_provider_clients

    providers, http = build_provider_clients(make_settings(services, stack.sandbox.url))
    try:
        await run_burst_worker(services, providers=providers)
    finally:
        await http.aclose()


@pytest.fixture(scope="session")
def live(stack: Stack) -> LiveServer:
    return stack.hub


@pytest.fixture
async def sandbox(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    url = stack.sandbox.url
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=KEEPALIVE) as client:
        yield client


@pytest.fixture
async def http(live: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=live.url, timeout=10, limits=KEEPALIVE) as client:
        yield client


@pytest.fixture(autouse=True)
def _answers_match_their_models() -> Iterator[None]:
    """Fails the test whose requests got an answer unlike its OpenAPI model
    (tests/response_check.py)."""
    before = len(VIOLATIONS)
    yield
    found = VIOLATIONS[before:]
    assert not found, "answers unlike their OpenAPI models:\n" + "\n".join(found[:5])


@pytest.fixture
def uid() -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


def token(sub: str, role: str, ttl: int = 600, secret: str = JWT_SECRET) -> str:
    return issue_token(secret, sub, Role(role), ttl)


def auth(sub: str, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, role)}"}


@dataclass
class People:
    fan: str
    creator: str


@pytest.fixture
async def people(sessions: async_sessionmaker[AsyncSession], uid: Callable[[str], str]) -> People:
    """A fan with ₦1,000.00 (100,000 kobo) funded through the ledger, and a creator."""
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(100_000, "NGN"))
    return People(fan=fan, creator=creator)


async def create_user(
    sessions: async_sessionmaker[AsyncSession],
    user_id: str,
    role: Role,
    fund: Money | None = None,
) -> None:
    async with unit_of_work(sessions) as uow:
        await ensure_user(uow.session, user_id, role, ("NGN", "USD"))
        if fund is not None:
            await fund_wallet_for_development(
                uow.session, user_id, fund, reference=f"test-funding:{user_id}:{fund.currency}"
            )


class SocketProbe:
    """A real python-socketio client that records every event it receives."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._arrived = asyncio.Event()
        self.client.on("*", self._record)

    async def _record(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))
        self._arrived.set()

    async def connect(self, url: str, auth: Any) -> None:
        await self.client.connect(url, auth=auth, transports=["websocket"], wait_timeout=5)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [data for event, data in self.events if event == type_]

    async def wait_for(
        self, type_: str, count: int = 1, timeout: float = 5
    ) -> list[dict[str, Any]]:
        async def arrived() -> list[dict[str, Any]]:
            while len(self.of_type(type_)) < count:
                self._arrived.clear()
                await self._arrived.wait()
            return self.of_type(type_)

        return await asyncio.wait_for(arrived(), timeout)

    async def close(self) -> None:
        if self.client.connected:
            await self.client.disconnect()


@pytest.fixture
async def sockets() -> AsyncIterator[Callable[[], SocketProbe]]:
    made: list[SocketProbe] = []

    def make() -> SocketProbe:
        probe = SocketProbe()
        made.append(probe)
        return probe

    yield make
    for probe in made:
        await probe.close()


@contextlib.asynccontextmanager
async def balancer(folder: Path, node_port: int, *, bind: str | None = None) -> AsyncIterator[str]:
    """deploy/nginx.conf as the compose balancer uses it, run by a real nginx on loopback in
    front of the node on `node_port`; yields its URL. `bind`: the loopback address nginx
    connects to the node from (so that a node can trust it and nobody else on 127/8)."""
    assert NGINX is not None
    site = (DEPLOY / "nginx.conf").read_text()
    for node in ("hub1:8000", "hub2:8000"):
        assert f"server {node} " in site, node
        site = site.replace(f"server {node} ", f"server 127.0.0.1:{node_port} ")
    port = free_port()
    assert "listen 80;" in site
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    if bind is not None:
        site = site.replace(
            "proxy_pass http://hub_nodes;",
            f"proxy_pass http://hub_nodes;\n        proxy_bind {bind};",
        )
    (folder / "hub.conf").write_text(site)
    temp = " ".join(
        f"{kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    config = folder / "nginx.conf"
    config.write_text(
        f"daemon off;\nmaster_process off;\npid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'} warn;\nevents {{}}\n"
        f"http {{\n  access_log off;\n  {temp}\n  include {folder / 'hub.conf'};\n}}\n"
    )
    process = await asyncio.create_subprocess_exec(
        NGINX,
        "-e",
        str(folder / "error.log"),
        "-p",
        str(folder),
        "-c",
        str(config),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(100):
                try:
                    await client.get(f"{url}/healthz")
                    break
                except httpx.TransportError:
                    assert process.returncode is None, (folder / "error.log").read_text()
                    await asyncio.sleep(0.1)
        yield url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


@contextlib.asynccontextmanager
async def scratch_database(services: Services, prefix: str) -> AsyncIterator[str]:
    """An empty database of its own on the suite's PostgreSQL, dropped afterwards: its URL."""
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(services.database_url)
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password or None,
        database="postgres",
    )
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
