"""Overlays (public tip alerts by key, revocable), presence counts, connection limits, and a
client that does not read."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket

import pytest
import socketio
from redis.asyncio import Redis

from hub.app import create_app
from hub.auth import issue_token
from ledger.accounts import Role
from ledger.db import unit_of_work
from ledger.events import record_events
from realtime import bus
from realtime.server import SocketLimits
from tests.conftest import (
    JWT_SECRET,
    LiveServer,
    SocketProbe,
    auth,
    create_user,
    hub_of_app,
    make_runtime,
    make_settings,
    token,
)
from tests.money import key


async def overlay_key(http, creator: str) -> dict:
    response = await http.post(
        "/api/v1/overlay-keys", json={"label": "OBS"}, headers=auth(creator, "creator")
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def overlay(live, key_: str) -> SocketProbe:
    probe = SocketProbe()
    await probe.connect(live.url, {"overlay_key": key_})
    return probe


async def test_an_overlay_gets_the_public_part_of_tips_only(live, http, people, sessions):
    created = await overlay_key(http, people.creator)
    assert created["key"].startswith("ovl_")
    screen = await overlay(live, created["key"])
    fan_token = issue_token(JWT_SECRET, people.fan, Role.FAN, 600, name="Ada L.")
    tip = await http.post(
        "/api/v1/tips",
        json={"creator_id": people.creator, "amount": 5_000, "currency": "NGN", "message": "hi"},
        headers={"Authorization": f"Bearer {fan_token}", **key()},
    )
    assert tip.status_code == 201
    [alert] = await screen.wait_for("tip.alert")
    assert alert["data"] == {
        "tip_id": tip.json()["id"],
        "name": "Ada L.",
        "amount": 5_000,
        "currency": "NGN",
        "message": "hi",
    }
    await asyncio.sleep(0.2)
    assert {event for event, _ in screen.events} == {"tip.alert"}  # never balances
    await screen.close()


async def test_a_revoked_key_is_cut_off_and_refused(live, http, people) -> None:
    created = await overlay_key(http, people.creator)
    screen = await overlay(live, created["key"])
    revoked = await http.delete(
        f"/api/v1/overlay-keys/{created['id']}", headers=auth(people.creator, "creator")
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    for _ in range(100):
        if not screen.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not screen.client.connected
    with pytest.raises(socketio.exceptions.ConnectionError):
        await overlay(live, created["key"])
    rotated_from = await overlay_key(http, people.creator)
    rotated = await http.post(
        f"/api/v1/overlay-keys/{rotated_from['id']}/rotate",
        headers=auth(people.creator, "creator"),
    )
    assert rotated.status_code == 201
    fresh = await overlay(live, rotated.json()["key"])
    assert fresh.client.connected
    await fresh.close()
    listed = await http.get("/api/v1/overlay-keys", headers=auth(people.creator, "creator"))
    assert [k["revoked_at"] is None for k in listed.json()["data"]] == [False, False, True]
    other = await http.delete(
        f"/api/v1/overlay-keys/{created['id']}", headers=auth("someone-else", "creator")
    )
    assert other.status_code == 404


async def test_presence_counts_users_overlays_and_viewers(live, http, people, uid) -> None:
    admin = auth(uid("admin"), "admin")
    before = (await http.get("/api/v1/presence", headers=admin)).json()["connected_users"]
    viewer = SocketProbe()
    await viewer.connect(live.url, {"token": token(people.fan, "fan"), "viewing": people.creator})
    screen = await overlay(live, (await overlay_key(http, people.creator))["key"])
    counts = (
        await http.get(
            f"/api/v1/creators/{people.creator}/presence", headers=auth(people.creator, "creator")
        )
    ).json()
    assert (counts["overlays"], counts["viewers"]) == (1, 1)
    assert (await http.get("/api/v1/presence", headers=admin)).json()["connected_users"] >= (
        before + 1
    )
    await viewer.close()
    await screen.close()
    await asyncio.sleep(0.3)
    counts = (await http.get(f"/api/v1/creators/{people.creator}/presence", headers=admin)).json()
    assert (counts["overlays"], counts["viewers"]) == (0, 0)
    forbidden = await http.get(
        f"/api/v1/creators/{people.creator}/presence", headers=auth(people.fan, "fan")
    )
    assert forbidden.status_code == 403


async def test_the_eleventh_connection_of_a_user_is_refused(live, sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    probes = []
    try:
        for _ in range(10):
            probe = SocketProbe()
            await probe.connect(live.url, {"token": token(user, "fan")})
            probes.append(probe)
        extra = socketio.AsyncClient(reconnection=False)
        reasons: list = []
        extra.on("connect_error", lambda data: reasons.append(data))
        with pytest.raises(socketio.exceptions.ConnectionError):
            await extra.connect(
                live.url,
                auth={"token": token(user, "fan")},
                transports=["websocket"],
                wait_timeout=5,
            )
        assert reasons[0]["data"]["type"] == "too_many_connections"
        await probes.pop().close()
        again = SocketProbe()
        await again.connect(live.url, {"token": token(user, "fan")})
        probes.append(again)
    finally:
        for probe in probes:
            await probe.close()


def _frame(text: str) -> bytes:
    """A masked WebSocket text frame, as a client must send."""
    payload = text.encode()
    mask = os.urandom(4)
    if len(payload) < 126:
        header = bytes([0x81, 0x80 | len(payload)])
    else:
        header = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2, "big")
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_a_client_that_does_not_read_is_disconnected(services, sessions, uid) -> None:
    """A raw WebSocket client with a tiny receive buffer joins and then never reads: the
    kernel buffers fill, then its outbound queue, and the node disconnects it."""
    app = create_app(make_runtime(make_settings(services)))
    server = LiveServer(app)
    await server.start()
    redis = Redis.from_url(services.redis_url)
    sock = socket.socket()
    try:
        realtime = hub_of_app(app).realtime
        realtime.limits = SocketLimits(outbound_queue=20)
        user = uid("fan")
        await create_user(sessions, user, Role.FAN)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(
            (
                "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        await asyncio.sleep(0.3)
        sock.recv(1024)  # the 101 answer and the engine.io open packet
        sock.sendall(_frame("40" + json.dumps({"token": token(user, "fan")})))
        for _ in range(100):
            if realtime.delivery.count:
                break
            await asyncio.sleep(0.05)
        assert realtime.delivery.count == 1
        big = {"blob": "x" * 4000}
        for _ in range(40):  # bounded: at most 2,000 events of 4 kB
            async with unit_of_work(sessions) as uow:
                written = await record_events(uow.session, [(user, "test.big", big)] * 50)
            await bus.publish(redis, written)
            await asyncio.sleep(0.05)
            if realtime.slow_consumers:
                break
        for _ in range(100):
            if realtime.delivery.count == 0:
                break
            await asyncio.sleep(0.05)
        assert realtime.slow_consumers >= 1
        assert realtime.delivery.count == 0
    finally:
        sock.close()
        await redis.aclose()
        await server.stop()


async def test_an_oversized_message_closes_the_connection(live, sessions, uid) -> None:
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    probe = SocketProbe()
    await probe.connect(live.url, {"token": token(user, "fan")})
    await probe.wait_for("recovered")
    await probe.client.emit("note", {"blob": "x" * 20_000})  # over the 16 KiB inbound limit
    for _ in range(100):
        if not probe.client.connected:
            break
        await asyncio.sleep(0.05)
    assert not probe.client.connected
