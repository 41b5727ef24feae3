"""The Socket.IO server: authenticated connections, server-assigned rooms, Redis fan-out."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import socketio

log = logging.getLogger(__name__)

CHANNEL = "hub-socketio"


@dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    role: str


class Refused(Exception):
    """Raised by an authenticator: the connection is refused with this type and message."""

    def __init__(self, type_: str, message: str) -> None:
        super().__init__(message)
        self.type = type_
        self.message = message


Authenticate = Callable[[Any], Awaitable[Identity]]


class PublishFailed(Exception):
    """Redis did not take the message: the event must stay unpublished for the sweeper."""


class RedisManager(socketio.AsyncRedisManager):  # type: ignore[misc]
    """python-socketio's Redis manager, except that a publish that fails twice raises.

    The stock manager logs the failure and returns as if the message had gone out, which would
    let us mark an event published that nobody received.
    """

    connected: bool

    async def _publish(self, data: Any) -> Any:
        for attempt in (1, 2):
            try:
                if not self.connected:
                    self._redis_connect()
                return await self.redis.publish(self.channel, self.json.dumps(data))
            except Exception as exc:
                self.connected = False
                if attempt == 2:
                    raise PublishFailed(f"cannot publish to Redis: {exc}") from exc
        return None


def user_room(user_id: str) -> str:
    return f"user:{user_id}"


def create_server(
    *,
    redis_url: str,
    authenticate: Authenticate,
    cors_origins: Sequence[str] | str = "*",
    transports: Sequence[str] = ("websocket",),
) -> socketio.AsyncServer:
    """A server whose emits travel through Redis, so any node or worker reaches any socket.

    `authenticate` receives the `auth` payload of the connect packet and returns the Identity,
    or raises Refused. Only the server puts sockets in rooms; clients send no joins.
    """
    manager = RedisManager(redis_url, channel=CHANNEL)
    sio = socketio.AsyncServer(
        async_mode="asgi",
        client_manager=manager,
        cors_allowed_origins=list(cors_origins) if not isinstance(cors_origins, str) else "*",
        transports=list(transports),
        logger=False,
        engineio_logger=False,
    )

    async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            identity = await authenticate(auth)
        except Refused as refused:
            raise socketio.exceptions.ConnectionRefusedError(
                refused.message, {"type": refused.type, "message": refused.message}
            ) from None
        await sio.save_session(sid, {"user_id": identity.user_id, "role": identity.role})
        await sio.enter_room(sid, user_room(identity.user_id))

    sio.on("connect", connect)

    return sio
