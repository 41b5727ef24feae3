"""The Socket.IO server of one hub node: authenticated connections, server-assigned rooms,
delivery from the event bus with recovery, and limits on what a client may do."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg
import socketio
from engineio import packet as eio_packet
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.db import BIGINT_MAX, PoolSettings, make_pool
from realtime.bus import BusEvent, Frame, Subscriber, frame
from realtime.channels import public_tip
from realtime.delivery import Delivery
from realtime.manager import HubManager
from realtime.presence import Presence, overlay_key, overlay_key_field, user_key, viewer_key
from realtime.sweeper import Sweeper

log = logging.getLogger(__name__)

SOCKETIO_CHANNEL = "hub-socketio"  # python-socketio's own cross-node messages (disconnects)
REDIS_TIMEOUT = 3.0  # seconds for the presence client to connect to or hear from Redis
LOG_READERS = 4  # connections of a node's read-only pool for the event log


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str  # for an overlay: the creator whose alerts it shows
    role: str  # fan, creator, admin, or "overlay"
    overlay_key_id: int | None = None
    viewing: str | None = None  # a fan's socket may say which creator's page it is on
    expires_at: float | None = None  # the token's exp (Unix time): the socket closes then


class Refused(Exception):
    """Raised by an authenticator: the connection is refused with this type and message."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message


# The CONNECT packet's auth and the handshake's environ (its HTTP_ORIGIN) → who it is.
Authenticate = Callable[[Any, dict[str, Any]], Awaitable[Identity]]


@dataclass(frozen=True, slots=True)
class SocketLimits:
    max_message_bytes: int = 16 * 1024  # an inbound packet above this closes the connection
    messages_per_second: float = 5.0  # client-sent events, sustained...
    message_burst: int = 20  # ...and in a burst; beyond that the client is disconnected
    outbound_queue: int = 1_000  # packets waiting for a client that does not read
    # Hub's own sockets (realtime.lean): bytes waiting in the transport for a client that does
    # not read; past them it is cut, and recovers what it missed on reconnect.
    outbound_buffer_bytes: int = 1 << 20
    connections_per_user: int = 10  # cluster-wide; the next connection is refused
    connections_per_overlay_key: int = 5  # cluster-wide, likewise


def _last_event_id(auth: Any, key: str = "last_event_id") -> int | None:
    """The last event id the client saw: an integer (or its decimal digits) from 0 to 2^63-1."""
    value = auth.get(key) if isinstance(auth, dict) else None
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= BIGINT_MAX:
        raise Refused("invalid_request", f"{key} must be an event id (0 to 2^63-1)")
    return value


# Whether a browser origin may open a socket: (Origin or None, the handshake environ) → bool.
Origins = Callable[..., bool]


class _Server(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server, told when a connect has finished.

    python-socketio calls the disconnect handler only for a connected socket, so one that
    closes while the connect handler still awaits (Redis, the database) would keep what the
    handler set up: its presence count (which holds the per-user limit), its delivery, its
    recovery. Here, once the connect is through, a socket that is already gone takes the
    disconnect path after all, and a live one is handed to `connected`: its CONNECT packet is
    on its way, so whatever is sent to it next follows it."""

    def __init__(
        self,
        *,
        connected: Callable[[str], None],
        abandoned: Callable[[str], Awaitable[None]],
        **options: Any,
    ) -> None:
        super().__init__(**options)
        self._connected = connected
        self._abandoned = abandoned
        self.connecting = 0  # connects whose handler has not finished

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        namespace = namespace or "/"
        self.connecting += 1
        try:
            try:
                await super()._handle_connect(eio_sid, namespace, data)
            except Exception:
                sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
                if sid is not None:
                    await self._abandoned(sid)
                raise
            sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
            if sid is None:
                return
            if not self.manager.is_connected(sid, namespace):
                await self._abandoned(sid)  # refused: nothing of it may stay
                return
            socket = self.eio.sockets.get(eio_sid)
            if socket is None or socket.closed:
                await self._handle_disconnect(eio_sid, namespace, self.reason.TRANSPORT_CLOSE)
                return
            self._connected(sid)
        finally:
            self.connecting -= 1


class Realtime:
    """One node's realtime part. Only the server puts sockets in rooms: any event a client
    sends is refused (and counted: an abusive client is disconnected)."""

    def __init__(
        self,
        *,
        redis_url: str,
        database_url: str,
        sessions: async_sessionmaker[AsyncSession],
        authenticate: Authenticate,
        origin_allowed: Origins,
        transports: Sequence[str] = ("websocket",),
        limits: SocketLimits | None = None,
        on_sent: Callable[[Frame], None] | None = None,
        lean: bool = True,
        pool: PoolSettings | None = None,
    ) -> None:
        self.limits = limits or SocketLimits()
        self._database_url = database_url
        # The log's reads (positions, replays, gap fills): a few connections of their own.
        self._pool_settings = replace(pool or PoolSettings(), size=LOG_READERS)
        self._pool: asyncpg.Pool | None = None
        self._on_sent = on_sent
        # Whether Hub's own WebSocket endpoint (realtime.lean) takes WebSocket clients when the
        # server runs with its protocol class (hub.serving); python-socketio takes the rest.
        self.lean = lean and "websocket" in transports
        self.origin_allowed = origin_allowed
        self.ping_interval = 25.0  # Engine.IO's defaults, on both paths
        self.ping_timeout = 20.0
        self._lean: dict[str, Any] = {}  # sid → realtime.lean.SocketProtocol, once connected
        self._lean_connecting = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.sio = _Server(
            connected=self._connected,
            abandoned=self._disconnect,
            async_mode="asgi",
            client_manager=HubManager(redis_url, channel=SOCKETIO_CHANNEL),
            # Checked on every handshake; tokens travel in the auth payload, never in cookies,
            # so no origin is ever told it may send credentials.
            cors_allowed_origins=origin_allowed,
            cors_credentials=False,
            transports=list(transports),
            max_http_buffer_size=self.limits.max_message_bytes,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            logger=False,
            engineio_logger=False,
        )
        self._authenticate = authenticate
        # Presence is on every connect's path: a Redis that hangs must fail it open, not hold it.
        self._redis = Redis.from_url(
            redis_url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
        self.delivery = Delivery(
            self._send,
            send_now=self._send_now,
            acquire_timeout=self._pool_settings.acquire_timeout,
        )
        self.subscriber = Subscriber(
            redis_url, self._on_event, self.delivery.fill_gaps, self._on_control
        )
        self.sweeper = Sweeper(sessions, self._redis)
        self.presence = Presence(self._redis)
        self._overlays: dict[str, dict[str, int]] = {}  # creator → {sid: overlay key id}
        self._buckets: dict[str, tuple[float, float]] = {}  # sid → (tokens, last refill)
        self._expiries: dict[str, asyncio.TimerHandle] = {}  # sid → its token's expiry
        # sid → its deliveries and their last event ids, recovered once the CONNECT is on its way
        self._recoveries: dict[str, list[tuple[Any, int | None]]] = {}
        self.slow_consumers = 0
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        self.sio.on("*", self._client_event)

    @property
    def connecting(self) -> int:
        """Connects in progress on this node (their handler not finished)."""
        return int(self.sio.connecting) + self._lean_connecting

    def spawn(self, work: Awaitable[Any]) -> None:
        """Run `work` on its own, kept referenced until it ends."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def connect_socket(
        self, sid: str, auth: Any, environ: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A socket of Hub's own endpoint asks to connect: None when it may (its CONNECT
        answer goes out next, then `socket_connected`), else the refusal's {message, data}."""
        self._lean_connecting += 1
        try:
            await self._connect(sid, environ, auth)
        except socketio.exceptions.ConnectionRefusedError as refused:
            return dict(refused.error_args)
        finally:
            self._lean_connecting -= 1
        return None

    def socket_connected(self, sid: str, socket: Any) -> None:
        self._lean[sid] = socket
        self._connected(sid)

    async def socket_gone(self, sid: str) -> None:
        self._lean.pop(sid, None)
        await self._disconnect(sid)

    def slow_consumer(self, sid: str) -> None:
        self.slow_consumers += 1
        log.warning("disconnecting %s: it does not read", sid)

    async def disconnect(self, sid: str) -> None:
        """End a local socket, whichever path it came by."""
        socket = self._lean.get(sid)
        if socket is not None:
            socket.close()
        else:
            await self.sio.disconnect(sid)

    @property
    def ready(self) -> bool:
        return self.subscriber.healthy

    async def start(self) -> None:
        self._pool = await make_pool(self._database_url, self._pool_settings, read_only=True)
        self.delivery.start(self._pool)
        self.subscriber.start()
        self.sweeper.start()
        self.presence.start()

    async def stop(self) -> None:
        await self.subscriber.stop()
        await self.sweeper.stop()
        await self.presence.stop()
        await self._redis.aclose()
        if self._pool is not None:
            await self._pool.close()

    async def _connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            identity = await self._authenticate(auth, environ)
            last_event_id = _last_event_id(auth)
            viewing_last_event_id = _last_event_id(auth, "viewing_last_event_id")
            user: str | None
            fields: tuple[str, ...]
            if identity.role == "overlay":
                assert identity.overlay_key_id is not None
                admitted = overlay_key_field(identity.overlay_key_id)
                limit, what = self.limits.connections_per_overlay_key, "overlay key"
                user, fields = None, (overlay_key(identity.user_id),)
            else:
                admitted = user_key(identity.user_id)
                limit, what = self.limits.connections_per_user, "user"
                user = identity.user_id
                fields = (viewer_key(identity.viewing),) if identity.viewing else ()
            if not await self.presence.admit(admitted, sid, limit, user, fields):
                raise Refused("too_many_connections", f"at most {limit} connections per {what}")
        except Refused as refused:
            raise socketio.exceptions.ConnectionRefusedError(
                refused.message, {"type": refused.type, "message": refused.message}
            ) from None
        except Exception:  # the database behind an overlay key, say: the client may retry
            log.exception("connect of %s failed", sid)
            message = "the server could not take the connection now: try again"
            raise socketio.exceptions.ConnectionRefusedError(
                message, {"type": "unavailable", "message": message}
            ) from None
        self._buckets[sid] = (float(self.limits.message_burst), time.monotonic())
        if identity.expires_at is not None:
            delay = max(0.0, identity.expires_at - time.time())
            self._expiries[sid] = asyncio.get_running_loop().call_later(delay, self._expire, sid)
        if identity.role == "overlay":
            assert identity.overlay_key_id is not None
            self._overlays.setdefault(identity.user_id, {})[sid] = identity.overlay_key_id
            return
        own = self.delivery.attach(sid, identity.user_id)
        recoveries = [(own, last_event_id)]
        if identity.viewing:  # the creator's public channel, recovered after the user's own
            channel = self.delivery.attach(sid, identity.viewing, public=True)
            recoveries.append((channel, viewing_last_event_id))
        self._recoveries[sid] = recoveries

    def _connected(self, sid: str) -> None:
        """The CONNECT answer is on its way (the client drops events that come before it):
        recovery may send now."""
        recoveries = self._recoveries.pop(sid, None)
        if recoveries is not None:
            self.spawn(self._recover(sid, recoveries))

    async def _recover(self, sid: str, recoveries: list[tuple[Any, int | None]]) -> None:
        try:
            for connection, last_event_id in recoveries:
                await self.delivery.recover(connection, last_event_id)
        except Exception:
            log.exception("recovery for %s failed; disconnecting so the client retries", sid)
            await self.disconnect(sid)

    def _expire(self, sid: str) -> None:
        self._expiries.pop(sid, None)
        self.spawn(self._close_expired(sid))

    async def _close_expired(self, sid: str) -> None:
        """The token ran out: say so and close; the client reconnects with a fresh token and
        recovers from its last event id, as after any disconnect."""
        expired = _error("token_expired", "the token has expired: reconnect with a fresh one")
        await self._send(sid, frame("hub.error", expired))
        await self.disconnect(sid)

    async def _disconnect(self, sid: str, reason: Any = None) -> None:
        """A socket is gone: forget all of it. Also for one whose connect never finished."""
        self._recoveries.pop(sid, None)
        self.delivery.detach(sid)
        self._buckets.pop(sid, None)
        expiry = self._expiries.pop(sid, None)
        if expiry is not None:
            expiry.cancel()
        for creator, sids in list(self._overlays.items()):
            if sids.pop(sid, None) is not None and not sids:
                del self._overlays[creator]
        await self.presence.leave(sid)

    async def _on_event(self, event: BusEvent) -> None:
        await self.delivery.on_event(event)
        if event.type == "tip.received" and event.user_id in self._overlays:
            await self._alert_overlays(event)

    async def _alert_overlays(self, event: BusEvent) -> None:
        """The public part of a tip, for the creator's overlays: never balances or ids."""
        envelope = event.envelope
        alert = {
            "type": "tip.alert",
            "occurred_at": envelope["occurred_at"],
            "data": public_tip(envelope["data"]),
        }
        alert_frame = frame("tip.alert", alert, event.frame.occurred)
        for sid in list(self._overlays.get(event.user_id, {})):
            await self._send(sid, alert_frame)

    async def _on_control(self, message: dict[str, Any]) -> None:
        if message.get("type") == "user.disconnect":  # the platform's disconnect or ban
            user_id = message.get("user_id")
            banned_until = message.get("banned_until")
            if isinstance(user_id, str):
                ended = (
                    _error("banned", f"banned by the platform until {banned_until}")
                    if isinstance(banned_until, str)
                    else _error("disconnected", "the platform ended this session")
                )
                for sid in self.delivery.sids_of(user_id):
                    await self._send(sid, frame("hub.error", ended))
                    await self.disconnect(sid)
        elif message.get("type") == "overlay_key.revoked":
            key_id = message.get("key_id")
            for sids in list(self._overlays.values()):
                for sid, key in list(sids.items()):
                    if key == key_id:
                        revoked = _error("overlay_key_revoked", "this key was revoked")
                        await self._send(sid, frame("hub.error", revoked))
                        await self.disconnect(sid)

    async def _client_event(self, event: str, sid: str, data: Any = None) -> dict[str, Any]:
        tokens, last = self._buckets.get(sid, (0.0, time.monotonic()))
        now = time.monotonic()
        tokens = min(
            float(self.limits.message_burst),
            tokens + (now - last) * self.limits.messages_per_second,
        )
        if tokens < 1:
            log.warning("disconnecting %s: too many messages", sid)
            await self._send(sid, frame("hub.error", _error("rate_limited", "too many messages")))
            await self.disconnect(sid)
            return _error("rate_limited", "too many messages")
        self._buckets[sid] = (tokens - 1, now)
        return _error(
            "forbidden", f"clients send no events ({event!r} refused): the server assigns rooms"
        )

    async def _send(self, sid: str, outbound: Frame) -> bool:
        """Send to one local socket; False when it is gone. A client whose outbound queue is
        full (it does not read) is disconnected; it recovers what it missed on reconnect.

        The frame's packet was encoded once (on the bus, or when read from the log): it goes
        to the socket as it is, past python-socketio's per-recipient encoding."""
        sent = self._send_now(sid, outbound)
        if sent is not None:
            return sent
        sent = await self._eio_send(sid, outbound)
        if sent and self._on_sent is not None:
            self._on_sent(outbound)
        return sent

    def _send_now(self, sid: str, outbound: Frame) -> bool | None:
        """`_send` for a socket of Hub's own endpoint, which takes a frame without waiting;
        None for any other (python-socketio's path is awaited)."""
        lean = self._lean.get(sid)
        if lean is None:
            return None
        sent = bool(lean.send(outbound.packet))
        if sent and self._on_sent is not None:
            self._on_sent(outbound)
        return sent

    async def _eio_send(self, sid: str, outbound: Frame) -> bool:
        """To a socket of python-socketio's path (long-polling, or HUB_SOCKET_ENGINE)."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        socket = self.sio.eio.sockets.get(eio_sid) if eio_sid else None
        if socket is None or socket.closed:
            return False
        if socket.queue.qsize() >= self.limits.outbound_queue:
            self.slow_consumer(sid)
            await self.sio.disconnect(sid)
            return False
        await socket.send(eio_packet.Packet(eio_packet.MESSAGE, data=outbound.packet))
        return True


def _error(type_: str, message: str) -> dict[str, Any]:
    return {"error": {"type": type_, "message": message}}
