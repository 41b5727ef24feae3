"""Two real hub processes sharing Redis: events cross nodes, a dead node's clients recover on
the other, and Redis stopped and started again under them loses nothing."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from hub.embedded import EmbeddedRedis, free_port
from ledger.accounts import Role
from ledger.money import Money
from tests.conftest import JWT_SECRET, UNLIMITED, Services, SocketProbe, auth, create_user, token


class Node:
    def __init__(self, services: Services, redis_url: str, logs: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
        env.update(
            HUB_DATABASE_URL=services.database_url,
            HUB_REDIS_URL=redis_url,
            HUB_JWT_SECRET=JWT_SECRET,
            HUB_PORT=str(self.port),
            HUB_LOG_LEVEL="warning",
            HUB_RATE_LIMIT_TRANSFERS=UNLIMITED,
            HUB_RATE_LIMIT_PAYMENTS=UNLIMITED,
        )
        self.log = logs / f"node-{self.port}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hub", "serve"],
            env=env,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
        )

    async def ready(self, expect: int = 200, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as client:
            while time.monotonic() < deadline:
                assert self.process.poll() is None, self.log.read_text()
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == expect:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"{self.url}/readyz never answered {expect}: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
async def cluster(services: Services) -> AsyncIterator[tuple[EmbeddedRedis, list[Node]]]:
    """A Redis of its own (so it can be stopped) and two hub nodes on it."""
    home = Path(tempfile.mkdtemp(prefix="hub-cluster-"))
    redis = EmbeddedRedis(home / "redis", persistent=False)
    port, _ = redis.start()
    nodes = [Node(services, redis.url(port), home) for _ in range(2)]
    try:
        await asyncio.gather(*(node.ready() for node in nodes))
        yield redis, nodes
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
        shutil.rmtree(home, ignore_errors=True)


async def tip(node: Node, fan: str, creator: str, amount: int) -> dict:
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as client:
        response = await client.post(
            "/api/v1/tips",
            json={"creator_id": creator, "amount": amount, "currency": "NGN"},
            headers={**auth(fan, "fan"), "Idempotency-Key": uuid.uuid4().hex},
        )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def people(sessions, uid) -> tuple[str, str]:
    fan, creator = uid("fan"), uid("creator")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(1_000_000, "NGN"))
    return fan, creator


async def socket(node: Node, user: str, role: str, last_event_id: int | None = None):
    probe = SocketProbe()
    auth_: dict[str, object] = {"token": token(user, role)}
    if last_event_id is not None:
        auth_["last_event_id"] = last_event_id
    await probe.connect(node.url, auth_)
    await probe.wait_for("recovered")
    return probe


async def connections_of(client: httpx.AsyncClient, user: str) -> int:
    response = await client.get(
        "/api/v1/presence", params={"user_id": user}, headers=auth("ops", "admin")
    )
    assert response.status_code == 200
    return int(response.json()["user"]["connections"])


def amounts(probe: SocketProbe) -> list[int]:
    return [event["data"]["amount"] for event in probe.of_type("tip.received")]


async def test_events_cross_nodes(cluster, sessions, uid) -> None:
    _, (one, two) = cluster
    fan, creator = await people(sessions, uid)
    creator_socket = await socket(one, creator, "creator")
    fan_socket = await socket(two, fan, "fan")
    await tip(two, fan, creator, 1_000)
    await tip(one, fan, creator, 2_000)
    await creator_socket.wait_for("tip.received", count=2)
    await fan_socket.wait_for("tip.sent", count=2)
    assert sorted(amounts(creator_socket)) == [1_000, 2_000]
    await creator_socket.close()
    await fan_socket.close()


async def test_a_dead_nodes_clients_recover_on_the_other(cluster, sessions, uid) -> None:
    _, (one, two) = cluster
    fan, creator = await people(sessions, uid)
    creator_socket = await socket(one, creator, "creator")
    await tip(two, fan, creator, 100)
    [first] = await creator_socket.wait_for("tip.received")
    one.stop(signal.SIGKILL)  # the node dies; its client is cut off
    for amount in (200, 300, 400):
        await tip(two, fan, creator, amount)
    await creator_socket.close()
    moved = await socket(two, creator, "creator", first["id"])
    assert moved.of_type("recovered")[0]["recovered"] is True
    assert amounts(moved) == [200, 300, 400]
    # The dead node's connection expires from presence: only the one on node two counts.
    async with httpx.AsyncClient(base_url=two.url, timeout=5) as client:
        for _ in range(100):  # bounded: the entries expire a few seconds after the death
            live_connections = await connections_of(client, creator)
            if live_connections == 1:
                break
            await asyncio.sleep(0.1)
    assert live_connections == 1
    await moved.close()


async def test_redis_stopped_and_started_under_two_nodes_loses_nothing(
    cluster, sessions, uid
) -> None:
    redis, (one, two) = cluster
    fan, creator = await people(sessions, uid)
    creator_socket = await socket(one, creator, "creator")
    fan_socket = await socket(two, fan, "fan")
    await tip(two, fan, creator, 10)
    await creator_socket.wait_for("tip.received")

    redis.stop()
    await asyncio.gather(one.ready(expect=503, timeout=15), two.ready(expect=503, timeout=15))
    async with httpx.AsyncClient(timeout=5) as client:
        scraped = (await client.get(f"{one.url}/metrics")).text
    assert "hub_event_bus_subscribed 0.0" in scraped
    assert "hub_event_bus_subscription_lost_total 1.0" in scraped
    # Money keeps moving while Redis is away: the tips commit, their events wait in the log.
    for amount in (20, 30):
        await tip(two, fan, creator, amount)
    # And a client can still connect and recover from the log meanwhile.
    first_id = creator_socket.of_type("tip.received")[0]["id"]
    late = await socket(two, creator, "creator", first_id)
    assert late.of_type("recovered")[0]["recovered"] is True
    assert amounts(late) == [20, 30]
    await late.close()

    redis.start()
    await asyncio.gather(one.ready(), two.ready())
    await creator_socket.wait_for("tip.received", count=3, timeout=15)
    await fan_socket.wait_for("tip.sent", count=3, timeout=15)
    assert amounts(creator_socket) == [10, 20, 30]
    assert creator_socket.client.connected and fan_socket.client.connected
    # Presence is rewritten by each node once Redis is back: the creator's one live socket
    # counts once, though a second one came and went while Redis was away.
    async with httpx.AsyncClient(base_url=two.url, timeout=5) as client:
        for _ in range(100):  # bounded: a node rewrites its presence within a heartbeat or two
            counted = (await connections_of(client, creator), await connections_of(client, fan))
            if counted == (1, 1):
                break
            await asyncio.sleep(0.1)
    assert counted == (1, 1)
    await creator_socket.close()
    await fan_socket.close()
