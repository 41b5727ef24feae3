"""Hub's own WebSocket endpoint (realtime/lean.py) at the wire: the handshake and what it
refuses, frames as RFC 6455 has them (masking, fragments, control frames, sizes), Engine.IO's
pings, a client that does not read, and a socket gone while its connect waits. The official
clients' conversations with it are in test_js_client.py, test_recovery.py and test_live.py,
which run on the hub as `hub serve` serves it."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import httpx
import pytest
import websockets
from redis.asyncio import Redis

from hub.app import create_app
from hub.serving import uvicorn_options
from ledger.accounts import Role
from ledger.db import unit_of_work
from ledger.events import record_events
from realtime import bus
from realtime.presence import user_key
from realtime.server import SocketLimits
from tests.conftest import (
    LiveServer,
    Services,
    create_user,
    hub_of_app,
    make_runtime,
    make_settings,
    token,
)
from tests.realtime.test_connect_edges import until
from tests.tcpproxy import StallingProxy

PATH = "/socket.io/?EIO=4&transport=websocket"


def masked(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    """A client frame: masked, as RFC 6455 requires of every client."""
    mask = os.urandom(4)
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = bytes([first, 0x80 | size])
    elif size < 65536:
        header = bytes([first, 0x80 | 126]) + struct.pack("!H", size)
    else:
        header = bytes([first, 0x80 | 127]) + struct.pack("!Q", size)
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Raw:
    """A WebSocket client on a plain socket, to send what the official clients never would."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, path: str = PATH, **headers: str) -> tuple[Raw, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        extra = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        return cls(reader, writer), head

    async def frame(self) -> tuple[int, bytes]:
        first, second = await asyncio.wait_for(self.reader.readexactly(2), 10)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(size)

    async def text(self) -> str:
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x1:
                return payload.decode()
            assert opcode in (0x9, 0xA), (opcode, payload)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def closed_with(self) -> int:
        """The close code the server ends with (after any text frames)."""
        while True:
            opcode, payload = await self.frame()
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0])

    def close(self) -> None:
        self.writer.close()


async def connected(port: int, user: str) -> Raw:
    raw, head = await Raw.open(port)
    assert head.startswith(b"HTTP/1.1 101"), head
    opened = await raw.text()
    assert opened.startswith("0") and json.loads(opened[1:])["upgrades"] == []
    raw.send(masked(("40" + json.dumps({"token": token(user, "fan")})).encode()))
    answer = await raw.text()
    assert answer.startswith("40{"), answer
    return raw


@pytest.fixture
async def lean(services: Services) -> AsyncIterator[tuple[LiveServer, StallingProxy]]:
    """A hub served as `hub serve` serves it, its Redis behind a proxy the test can stall."""
    proxy = StallingProxy(urlparse(services.redis_url).port or 6379)
    await proxy.start()
    settings = make_settings(services, redis_url=proxy.url)
    server = LiveServer(create_app(make_runtime(settings)), **uvicorn_options(settings))
    await server.start()
    try:
        yield server, proxy
    finally:
        proxy.resume()
        await server.stop()
        await proxy.stop()


def realtime_of(server: LiveServer):
    return hub_of_app(server.server.config.app).realtime


async def test_the_handshake_and_a_connect_answer_as_engine_io_4_says(lean, sessions, uid):
    server, _ = lean
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    raw = await connected(server.port, user)
    realtime = realtime_of(server)
    assert realtime.delivery.count == 1
    assert len(realtime._lean) == 1  # Hub's own endpoint took it, not python-socketio
    # and delivery writes to its sockets at once (Delivery.on_event's path without the lock)
    assert realtime.delivery._send_now == realtime._send_now
    recovered = await raw.text()
    assert recovered.startswith('42["recovered"'), recovered
    assert json.loads(recovered[2:])[1]["recovered"] is True
    raw.close()
    await until(lambda: realtime.delivery.count == 0, "the socket forgotten")


async def test_what_the_handshake_refuses(lean):
    server, _ = lean
    for path, headers in (
        ("/socket.io/?EIO=3&transport=websocket", {}),  # Engine.IO v3
        (PATH + "&x=%01", {}),  # a control character in the query
        (PATH, {"Origin": "https://elsewhere.example"}),  # an origin not allowed
    ):
        raw, head = await Raw.open(server.port, path, **headers)
        assert head.startswith(b"HTTP/1.1 400"), (path, head)
        raw.close()
    async with httpx.AsyncClient() as client:  # a plain GET is python-socketio's, as before
        plain = await client.get(f"{server.url}/socket.io/?EIO=4&transport=websocket")
    assert plain.status_code == 400


async def test_frames_fragments_and_control_frames(lean, sessions, uid):
    server, _ = lean
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    raw, head = await Raw.open(server.port)
    assert head.startswith(b"HTTP/1.1 101")
    await raw.text()
    connect = ("40" + json.dumps({"token": token(user, "fan")})).encode()
    raw.send(masked(connect[:5], fin=False))  # a message in three fragments...
    raw.send(masked(b"ping me", opcode=0x9))  # ...with a ping between them (allowed)
    raw.send(masked(connect[5:9], opcode=0x0, fin=False))
    raw.send(masked(connect[9:], opcode=0x0))
    opcode, payload = await raw.frame()
    assert (opcode, payload) == (0xA, b"ping me")
    assert (await raw.text()).startswith("40{")
    raw.send(masked(b'42["hello",{}]'))  # a client event without an ack: refused silently
    raw.send(masked(b'427["hello",{}]'))  # with one: the refusal comes back as its ack
    ack = await raw.text()
    while not ack.startswith("437"):
        ack = await raw.text()
    assert json.loads(ack[3:])[0]["error"]["type"] == "forbidden"
    raw.send(masked(b"\x00\x01", opcode=0x2))  # binary: not accepted
    assert await raw.closed_with() == 1003
    raw.close()
    realtime = realtime_of(server)
    await until(lambda: realtime.delivery.count == 0, "the socket forgotten")


async def test_unmasked_and_oversized_frames_close_the_socket(lean, sessions, uid):
    server, _ = lean
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    raw = await connected(server.port, user)
    raw.send(b"\x81\x02" + b"42")  # unmasked
    assert await raw.closed_with() == 1002
    raw.close()
    raw = await connected(server.port, user)
    raw.send(masked(b'42["x","' + b"y" * 20_000 + b'"]'))  # over the 16 KiB limit
    assert await raw.closed_with() == 1009
    raw.close()
    realtime = realtime_of(server)
    await until(lambda: realtime.delivery.count == 0, "both sockets forgotten")


async def test_a_client_that_never_answers_pings_is_closed(lean, sessions, uid):
    server, _ = lean
    realtime = realtime_of(server)
    realtime.ping_interval = realtime.ping_timeout = 0.3
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    raw = await connected(server.port, user)
    assert await raw.text() != ""  # recovered
    while (message := await raw.text()) != "2":  # Engine.IO's PING
        assert message.startswith("42"), message
    raw.send(masked(b"3"))  # one pong: the next ping follows
    assert await raw.text() == "2"
    assert await raw.closed_with() == 1000  # no pong this time
    raw.close()
    await until(lambda: realtime.delivery.count == 0, "the silent socket forgotten")
    assert await realtime.presence.count(user_key(user)) == 0


async def test_a_client_that_does_not_read_is_cut(lean, services, sessions, uid):
    """A raw client with a tiny receive buffer stops reading: the kernel's buffers fill, then
    the transport's, and past `outbound_buffer_bytes` the socket is cut and forgotten."""
    server, _ = lean
    realtime = realtime_of(server)
    realtime.limits = SocketLimits(outbound_buffer_bytes=64 * 1024)
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        (
            f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await asyncio.sleep(0.3)
    sock.recv(1024)  # the 101 answer and the open packet
    sock.sendall(masked(("40" + json.dumps({"token": token(user, "fan")})).encode()))
    redis = Redis.from_url(services.redis_url)
    try:
        await until(lambda: realtime.delivery.count == 1, "connected")
        slow_before = realtime.slow_consumers
        big = {"blob": "x" * 4000}
        for _ in range(40):  # bounded: at most 2,000 events of 4 kB
            async with unit_of_work(sessions) as uow:
                written = await record_events(uow.session, [(user, "test.big", big)] * 50)
            await bus.publish(redis, written)
            await asyncio.sleep(0.05)
            if realtime.slow_consumers > slow_before:
                break
        assert realtime.slow_consumers == slow_before + 1
        await until(lambda: realtime.delivery.count == 0, "the slow socket forgotten")
    finally:
        sock.close()
        await redis.aclose()


async def test_a_socket_gone_while_its_connect_waits_leaves_nothing_behind(lean, sessions, uid):
    server, proxy = lean
    realtime = realtime_of(server)
    realtime.ping_interval = realtime.ping_timeout = 0.3
    user = uid("fan")
    await create_user(sessions, user, Role.FAN)
    raw, _ = await Raw.open(server.port)
    await raw.text()
    proxy.stall()
    raw.send(masked(("40" + json.dumps({"token": token(user, "fan")})).encode()))
    await until(lambda: realtime.connecting == 1, "the connect waits on Redis")
    assert await raw.closed_with() == 1000  # its ping went unanswered meanwhile
    raw.close()
    proxy.resume()
    await until(lambda: realtime.connecting == 0, "the connect finished")
    assert realtime.delivery.count == 0
    assert await realtime.presence.count(user_key(user)) == 0
    assert realtime.delivery.recoveries == 0


async def test_other_websocket_upgrades_go_to_the_app(lean):
    """A WebSocket upgrade that is not a fresh Socket.IO WebSocket is uvicorn's, as before:
    here the app has no such route and refuses it."""
    server, _ = lean
    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/elsewhere"):
            pass
