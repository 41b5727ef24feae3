"""Emitting to the Node peer from Python exactly as @socket.io/redis-emitter does: a msgpack
`[uid, packet, opts]` published on `socket.io#/#<room>#` (or `socket.io#/#` for everyone),
which the peer's Redis adapter turns into a local broadcast. A tiny msgpack encoder suffices."""

from __future__ import annotations

import struct
from typing import Any

from redis.asyncio import Redis

PREFIX = "socket.io#/#"
UID = "emitter"
EVENT = 2  # socket.io-parser PacketType.EVENT


def pack(value: Any) -> bytes:
    out = bytearray()
    _pack(value, out)
    return bytes(out)


def _pack(value: Any, out: bytearray) -> None:
    if value is None:
        out.append(0xC0)
    elif value is True:
        out.append(0xC3)
    elif value is False:
        out.append(0xC2)
    elif isinstance(value, int):
        if 0 <= value < 128:
            out.append(value)
        elif -32 <= value < 0:
            out.append(value & 0xFF)
        elif 0 <= value < 2**32:
            out += b"\xce" + struct.pack(">I", value)
        elif 0 <= value < 2**64:
            out += b"\xcf" + struct.pack(">Q", value)
        else:
            out += b"\xd3" + struct.pack(">q", value)
    elif isinstance(value, float):
        out += b"\xcb" + struct.pack(">d", value)
    elif isinstance(value, str):
        data = value.encode()
        n = len(data)
        if n < 32:
            out.append(0xA0 | n)
        elif n < 256:
            out += bytes((0xD9, n))
        elif n < 65_536:
            out += b"\xda" + struct.pack(">H", n)
        else:
            out += b"\xdb" + struct.pack(">I", n)
        out += data
    elif isinstance(value, list | tuple):
        n = len(value)
        out += bytes((0x90 | n,)) if n < 16 else b"\xdc" + struct.pack(">H", n)
        for item in value:
            _pack(item, out)
    elif isinstance(value, dict):
        n = len(value)
        out += bytes((0x80 | n,)) if n < 16 else b"\xde" + struct.pack(">H", n)
        for key, item in value.items():
            _pack(str(key), out)
            _pack(item, out)
    else:
        raise TypeError(f"cannot pack {type(value).__name__}")


def message(event: str, data: Any, room: str | None) -> tuple[str, bytes]:
    """(channel, payload) of `io.to(room).emit(event, data)` (`io.emit` when room is None)."""
    packet = {"type": EVENT, "data": [event, data], "nsp": "/"}
    opts = {"rooms": [room] if room else [], "flags": {}, "except": []}
    channel = f"{PREFIX}{room}#" if room else PREFIX
    return channel, pack([UID, packet, opts])


async def emit(redis: Redis, messages: list[tuple[str, bytes]]) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for channel, payload in messages:
            pipe.publish(channel, payload)
        await pipe.execute()
