"""A socket's connect at its edges: the client gone before the connect handler finished, and
Redis hung (accepting, never answering) while clients connect. Redis sits behind a real TCP
proxy on 127.0.0.1 that the test stalls."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from urllib.parse import urlparse

import pytest
import socketio
import websockets

from hub.app import create_app
from ledger.accounts import Role
from realtime.presence import user_key
from tests.conftest import (
    LiveServer,
    Services,
    create_user,
    hub_of_app,
    make_runtime,
    make_settings,
    token,
)
from tests.tcpproxy import StallingProxy


async def until(condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout} s: {what}")


@pytest.fixture
async def behind_proxy(services: Services) -> AsyncIterator[tuple[LiveServer, StallingProxy]]:
    """A hub whose every Redis connection goes through a proxy the test can stall."""
    proxy = StallingProxy(urlparse(services.redis_url).port or 6379)
    await proxy.start()
    app = create_app(make_runtime(make_settings(services, redis_url=proxy.url)))
    server = LiveServer(app)
    await server.start()
    try:
        yield server, proxy
    finally:
        proxy.resume()
        await server.stop()
        await proxy.stop()


async def test_a_socket_closed_while_its_connect_runs_leaves_nothing_behind(
    behind_proxy, sessions, uid
) -> None:
    """python-socketio calls the disconnect handler only for connected sockets. A socket's
    reader waits for its connect handler, but Engine.IO's ping check does not: a client silent
    past the ping timeout is closed while the handler still waits (here on a stalled Redis).
    That socket must not leave its presence count (which holds the per-user limit), its
    delivery or a recovery behind."""
    server, proxy = behind_proxy
    realtime = hub_of_app(server.server.config.app).realtime
    realtime.sio.eio.ping_interval = realtime.sio.eio.ping_timeout = 0.5
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    url = f"ws://127.0.0.1:{server.port}/socket.io/?EIO=4&transport=websocket"
    async with websockets.connect(url) as ws:  # never answers a ping
        opened = await ws.recv()
        assert isinstance(opened, str) and opened.startswith("0")
        proxy.stall()
        await ws.send("40" + json.dumps({"token": token(user, "fan")}))
        await until(lambda: realtime.connecting == 1, "the connect handler waits on Redis")
        await until(
            lambda: all(socket.closed for socket in realtime.sio.eio.sockets.values()),
            "the node closed the silent socket",
        )
        assert realtime.connecting == 1  # still waiting on Redis
        proxy.resume()
        await until(lambda: realtime.connecting == 0, "the connect handler finished")
    assert realtime.delivery.count == 0
    assert list(realtime.sio.manager.get_participants("/", None)) == []
    assert await realtime.presence.count(user_key(user)) == 0
    assert realtime.delivery.recoveries == 0  # nothing was read for a socket that is gone

    # And the user is not locked out: the per-user limit counts only live sockets.
    clients = [socketio.AsyncClient(reconnection=False) for _ in range(10)]
    try:
        for client in clients:
            await client.connect(
                server.url, auth={"token": token(user, "fan")}, transports=["websocket"]
            )
        assert await realtime.presence.count(user_key(user)) == 10
    finally:
        for client in clients:
            await client.disconnect()


async def test_a_hung_redis_does_not_hang_connects(behind_proxy, sessions, uid) -> None:
    """Redis accepts and never answers: presence fails open after the client's socket timeout,
    so a connect still completes and recovers from the database."""
    server, proxy = behind_proxy
    realtime = hub_of_app(server.server.config.app).realtime
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    proxy.stall()
    client = socketio.AsyncClient(reconnection=False)
    recovered: asyncio.Future[dict] = asyncio.get_running_loop().create_future()
    client.on("recovered", lambda data: recovered.done() or recovered.set_result(data))
    try:
        await client.connect(
            server.url,
            auth={"token": token(user, "fan")},
            transports=["websocket"],
            wait_timeout=30,
        )
        data = await asyncio.wait_for(recovered, 30)
        assert data["recovered"] is True
        assert realtime.delivery.count == 1
    finally:
        await client.disconnect()
