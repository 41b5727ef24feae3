"""Hub's own WebSocket endpoint for Socket.IO clients (Engine.IO v4, Socket.IO v5, the
WebSocket transport): the hot part of the transport, owned (issue 14).

python-socketio on uvicorn's ASGI WebSocket gives each socket an ASGI coroutine, a reader
task, a writer task fed by an `asyncio.Queue` (waited on with `wait_for`, a task and a timer
per packet on Python 3.11), the handshake's environ and headers kept for the socket's life, and
an encode per recipient. Here a socket is one `asyncio.Protocol` object with `__slots__` on
uvicorn's own transport: uvicorn parses the HTTP upgrade as for any request and hands the
connection over (its `ws` protocol class); this class answers the handshake itself, writes each
outbound packet straight to the transport as one prebuilt WebSocket frame (one frame per
event, the same bytes for every socket it goes to), keeps its ping on two loop timers, and
buffers nothing of its own: what the kernel does not take waits in the transport's buffer, and
a client that lets that grow past `SocketLimits.outbound_buffer_bytes` is cut (it recovers on
reconnect).

What it speaks is what Hub's clients need, as the official client speaks it: the WebSocket
transport only (`transport=websocket`, no `sid`: a polling session's upgrade goes to
python-socketio, as does long-polling when `HUB_SOCKET_TRANSPORTS` allows it), the default
namespace, a CONNECT with an auth payload, events from the server, pings; client events are
refused as python-socketio's path refuses them (`Realtime._client_event`), binary packets and
other namespaces are refused. Anything else upgrading to a WebSocket goes to uvicorn's own
protocol unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import secrets
import struct
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import socketio
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

try:
    from websockets.speedups import apply_mask
except ImportError:  # no C extension for this platform: websockets' own Python one
    from websockets.utils import apply_mask

if TYPE_CHECKING:
    from realtime.server import Realtime

log = logging.getLogger(__name__)

PATH = "/socket.io/"
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_CLOSE, _PING, _PONG, _TEXT, _BINARY, _CONTINUATION = 0x8, 0x9, 0xA, 0x1, 0x2, 0x0
_PING_PACKET = b"\x81\x012"  # a text frame holding Engine.IO's PING ("2")


@lru_cache(maxsize=256)
def message_frame(packet: str) -> bytes:
    """One Socket.IO packet as the WebSocket frame that carries it: an Engine.IO MESSAGE ("4"),
    unmasked, text. Cached by the packet's text: an event going to several sockets (a user's
    tabs, a creator's overlays, a broadcast) is framed once."""
    return text_frame("4" + packet)


def text_frame(text: str) -> bytes:
    payload = text.encode()
    size = len(payload)
    if size < 126:
        return b"\x81" + bytes((size,)) + payload
    if size < 65536:
        return b"\x81\x7e" + struct.pack("!H", size) + payload
    return b"\x81\x7f" + struct.pack("!Q", size) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    payload = struct.pack("!H", code) + reason.encode()[:120]
    return b"\x88" + bytes((len(payload),)) + payload


def _realtime_of(config: Any) -> Realtime | None:
    """The Realtime of the app uvicorn serves: `hub.app.create_app` marks its outermost app."""
    found = getattr(config, "_hub_realtime", None)
    if found is None:
        app = getattr(config, "loaded_app", None)
        for _ in range(16):
            if app is None or hasattr(app, "hub_realtime"):
                break
            app = getattr(app, "app", None)
        found = getattr(app, "hub_realtime", None)
        config._hub_realtime = found
    return found


class SocketProtocol(asyncio.Protocol):
    """uvicorn's `ws` protocol class: Hub's sockets, and uvicorn's own for anything else."""

    __slots__ = (
        "_app_state",
        "_config",
        "_connecting",
        "_fragments",
        "_inbound",
        "_ping_timer",
        "_pong_timer",
        "_realtime",
        "_server_state",
        "closed",
        "connected",
        "environ",
        "sid",
        "transport",
    )

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any]) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._realtime = _realtime_of(config)
        self.transport: asyncio.Transport | None = None
        self._inbound = b""
        self._fragments: list[bytes] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._pong_timer: asyncio.TimerHandle | None = None
        self._connecting = False
        self.connected = False
        self.closed = False
        self.sid = ""
        self.environ: dict[str, Any] = {}

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._server_state.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server_state.connections.discard(self)
        self._gone()

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if not self.sid:
            self._handshake(data)
            return
        self._inbound += data
        try:
            self._read_frames()
        except _ProtocolError as exc:
            self._close(exc.code, exc.reason)

    # uvicorn's server calls these on its connections when it shuts down

    def shutdown(self) -> None:
        self._close(1012, "server restarting")

    # the handshake

    def _handshake(self, head: bytes) -> None:
        assert self.transport is not None
        lines = head.split(b"\r\n")
        method, _, target = lines[0].partition(b" ")
        target = target.rpartition(b" ")[0]
        headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        path, _, query = target.partition(b"?")
        params = dict(parse_qsl(query.decode("latin-1"), keep_blank_values=True))
        realtime = self._realtime
        if (
            realtime is None
            or not realtime.lean
            or path != PATH.encode()
            or params.get("transport") != "websocket"
            or "sid" in params
        ):
            self._hand_over(head)
            return
        key = headers.get(b"sec-websocket-key", b"")
        if (
            method != b"GET"
            or params.get("EIO") != "4"
            or headers.get(b"sec-websocket-version") != b"13"
            or len(key) != 24
            or _controlled(query.decode("latin-1"), params)
        ):
            self._refuse(400, "Bad Request")
            return
        origin = headers.get(b"origin")
        environ = {
            "HTTP_HOST": headers.get(b"host", b"").decode("latin-1"),
            "wsgi.url_scheme": (headers.get(b"x-forwarded-proto") or b"http").decode("latin-1"),
        }
        if origin:
            environ["HTTP_ORIGIN"] = origin.decode("latin-1")
        self.environ = environ  # its app's own origins are checked at connect
        if not realtime.origin_allowed(environ.get("HTTP_ORIGIN"), environ):
            self._refuse(400, "Bad Request")
            return
        accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self.sid = secrets.token_urlsafe(15)
        limits = realtime.limits
        opened = {
            "sid": secrets.token_urlsafe(15),
            "upgrades": [],
            "pingInterval": int(realtime.ping_interval * 1000),
            "pingTimeout": int(realtime.ping_timeout * 1000),
            "maxPayload": limits.max_message_bytes,
        }
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            + text_frame("0" + json.dumps(opened, separators=(",", ":")))
        )  # fmt: skip
        self._schedule_ping()

    def _hand_over(self, head: bytes) -> None:
        """Not Hub's socket: uvicorn's own WebSocket protocol takes the connection as it is."""
        assert self.transport is not None
        self._server_state.connections.discard(self)
        self.closed = True
        other = WebSocketsSansIOProtocol(
            config=self._config, server_state=self._server_state, app_state=self._app_state
        )
        other.connection_made(self.transport)
        self.transport.set_protocol(other)
        other.data_received(head)

    def _refuse(self, status: int, reason: str) -> None:
        assert self.transport is not None
        self.closed = True
        body = b"the socket handshake was refused"
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason.encode(), len(body), body)
        )
        self.transport.close()

    # frames in

    def _read_frames(self) -> None:
        data = self._inbound
        offset = 0
        limit = self._realtime.limits.max_message_bytes if self._realtime else 16384
        while len(data) - offset >= 2:
            first, second = data[offset], data[offset + 1]
            fin, opcode = first & 0x80, first & 0x0F
            if not second & 0x80:
                raise _ProtocolError(1002, "client frames must be masked")
            size = second & 0x7F
            at = offset + 2
            if size == 126:
                if len(data) - at < 2:
                    break
                (size,) = struct.unpack_from("!H", data, at)
                at += 2
            elif size == 127:
                if len(data) - at < 8:
                    break
                (size,) = struct.unpack_from("!Q", data, at)
                at += 8
            if size > limit:
                raise _ProtocolError(1009, "message too big")
            if len(data) - at < 4 + size:
                break
            mask = data[at : at + 4]
            payload = apply_mask(data[at + 4 : at + 4 + size], mask)
            offset = at + 4 + size
            self._frame(fin, opcode, payload, limit)
            if self.closed:
                return
        self._inbound = data[offset:]

    def _frame(self, fin: int, opcode: int, payload: bytes, limit: int) -> None:
        if opcode >= 0x8:  # control frames: never fragmented, at most 125 bytes
            if not fin or len(payload) > 125:
                raise _ProtocolError(1002, "invalid control frame")
            if opcode == _CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1000
                self._close(code if 1000 <= code < 5000 and code not in (1005, 1006) else 1000)
            elif opcode == _PING:
                self._write(b"\x8a" + bytes((len(payload),)) + payload)
            elif opcode != _PONG:
                raise _ProtocolError(1002, "unknown opcode")
            return
        if opcode == _CONTINUATION:
            if self._fragments is None:
                raise _ProtocolError(1002, "continuation of nothing")
            self._fragments.append(payload)
            if sum(map(len, self._fragments)) > limit:
                raise _ProtocolError(1009, "message too big")
            if not fin:
                return
            payload, self._fragments = b"".join(self._fragments), None
        elif opcode in (_TEXT, _BINARY):
            if self._fragments is not None:
                raise _ProtocolError(1002, "a new message inside a fragmented one")
            if opcode == _BINARY:
                raise _ProtocolError(1003, "binary packets are not accepted")
            if not fin:
                self._fragments = [payload]
                return
        else:
            raise _ProtocolError(1002, "unknown opcode")
        try:
            text = payload.decode()
        except UnicodeDecodeError:
            raise _ProtocolError(1007, "invalid UTF-8") from None
        self._engineio(text)

    # Engine.IO and Socket.IO in

    def _engineio(self, text: str) -> None:
        kind = text[:1]
        if kind == "3":  # PONG
            if self._pong_timer is not None:
                self._pong_timer.cancel()
                self._pong_timer = None
                self._schedule_ping()
        elif kind == "4":
            self._socketio(text[1:])
        elif kind == "1":
            self._close(1000)
        elif kind != "6":  # NOOP; a client never PINGs in v4, nor upgrades a WebSocket
            raise _ProtocolError(1002, "unexpected Engine.IO packet")

    def _socketio(self, text: str) -> None:
        kind = text[:1]
        if kind == "0":
            if self._connecting or self.connected:
                return
            namespace, auth = _namespace_and_data(text[1:])
            if namespace != "/":
                self._send_packet(
                    socketio.packet.Packet(
                        socketio.packet.CONNECT_ERROR,
                        {"message": "Unable to connect"},
                        namespace=namespace,
                    ).encode()
                )
                return
            self._connecting = True
            assert self._realtime is not None
            self._realtime.spawn(self._connect(auth))
        elif kind == "1":
            self._close(1000)
        elif kind == "2" and self.connected:
            assert self._realtime is not None
            self._realtime.spawn(self._client_event(text))
        elif kind in ("2", "3"):
            return  # an event before the CONNECT answer, or an ACK of nothing Hub asked
        else:
            raise _ProtocolError(1003, "binary packets are not accepted")

    async def _connect(self, auth: Any) -> None:
        realtime = self._realtime
        assert realtime is not None
        try:
            refusal = await realtime.connect_socket(self.sid, auth, self.environ)
        finally:
            self._connecting = False
        if refusal is not None:
            self._send_packet(
                socketio.packet.Packet(socketio.packet.CONNECT_ERROR, refusal).encode()
            )
            return
        if self.closed:  # gone while the connect waited: the disconnect path, as for any socket
            await realtime.socket_gone(self.sid)
            return
        self.connected = True
        self._send_packet(
            socketio.packet.Packet(socketio.packet.CONNECT, {"sid": self.sid}).encode()
        )
        realtime.socket_connected(self.sid, self)

    async def _client_event(self, text: str) -> None:
        assert self._realtime is not None
        try:
            packet = socketio.packet.Packet(encoded_packet=text)
        except ValueError:
            self._close(1003, "invalid packet")
            return
        data = packet.data if isinstance(packet.data, list) and packet.data else ["?"]
        answer = await self._realtime._client_event(str(data[0]), self.sid, *data[1:2])
        if packet.id is not None and not self.closed:
            ack = socketio.packet.Packet(socketio.packet.ACK, [answer], id=packet.id)
            self._send_packet(ack.encode())

    # out

    def send(self, packet: str) -> bool:
        """Write one Socket.IO packet (already encoded); False when the socket is gone or was
        just cut for not reading."""
        if not self.connected or self.closed:
            return False
        return self._write(message_frame(packet))

    def _send_packet(self, packet: str) -> None:
        self._write(message_frame(packet))

    def _write(self, data: bytes) -> bool:
        transport = self.transport
        if transport is None or self.closed or transport.is_closing():
            return False
        transport.write(data)
        realtime = self._realtime
        if realtime is not None and transport.get_write_buffer_size() > (
            realtime.limits.outbound_buffer_bytes
        ):
            realtime.slow_consumer(self.sid)
            self._abort()
            return False
        return True

    # pings

    def _schedule_ping(self) -> None:
        realtime = self._realtime
        if realtime is None or self.closed:
            return
        loop = asyncio.get_running_loop()
        self._ping_timer = loop.call_later(realtime.ping_interval, self._ping)

    def _ping(self) -> None:
        self._ping_timer = None
        if self.closed or self._realtime is None:
            return
        self._write(_PING_PACKET)
        loop = asyncio.get_running_loop()
        self._pong_timer = loop.call_later(self._realtime.ping_timeout, self._silent)

    def _silent(self) -> None:
        self._pong_timer = None
        self._close(1000, "ping timeout")

    # the end

    def close(self) -> None:
        """The server ends the socket (disconnect, slow consumer, revoked key, expired token)."""
        if self.connected and not self.closed:
            self._send_packet("1")  # Socket.IO DISCONNECT: the client does not reconnect by itself
        self._close(1000)

    def _close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(close_frame(code, reason))
            transport.close()
        self._gone()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self._gone()

    def _gone(self) -> None:
        if self.closed:
            return
        self.closed = True
        for timer in (self._ping_timer, self._pong_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._pong_timer = None
        realtime = self._realtime
        if realtime is not None and self.sid and not self._connecting:
            realtime.spawn(realtime.socket_gone(self.sid))


class _ProtocolError(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _controlled(query: str, params: dict[str, str]) -> bool:
    """A control character in the query, as written or as decoded (the edge's rule)."""
    return _CONTROL.search("".join((query, *params, *params.values()))) is not None


def _namespace_and_data(text: str) -> tuple[str, Any]:
    """A CONNECT's body: an optional "/namespace," then optional JSON."""
    namespace = "/"
    if text.startswith("/"):
        namespace, _, text = text.partition(",")
    if not text:
        return namespace, None
    try:
        return namespace, json.loads(text)
    except ValueError:
        return namespace, None
