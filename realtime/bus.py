"""The event bus: committed events travel from any process to every hub node through Redis.

Redis pub/sub is at most once, so the bus is only the fast path: each event row stays in
PostgreSQL, numbered per user, and nodes fill any gap from there (see realtime/delivery.py).
The subscriber pings its own connection and treats a silent second as lost, so a dead or
stalled subscription is noticed within a few seconds, reported, and re-established.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis.asyncio import Redis

from ledger.events import Event
from ledger.ids import platform_json

log = logging.getLogger(__name__)

CHANNEL = "hub:events"
PING_EVERY = 1.0  # seconds between pings on the subscription
DEAD_AFTER = 3.0  # seconds without any answer before the subscription is declared lost


class PublishFailed(Exception):
    """Redis did not take the message: the event must stay unpublished for the sweeper."""


@dataclass(frozen=True, slots=True)
class Frame:
    """What a socket receives, encoded once: a Socket.IO EVENT packet for the default
    namespace. Every socket of every user it goes to gets the same text."""

    type: str
    packet: str
    occurred: float | None = None  # the event's commit time (seconds since the epoch)

    @property
    def data(self) -> Any:
        return json.loads(self.packet[1:])[1]


def frame(type_: str, data: Any, occurred: float | None = None) -> Frame:
    """The packet of one event, with its user ids as their platforms know them (ledger.ids):
    built once per event, not per socket."""
    packet = platform_json(json.dumps([type_, data], separators=(",", ":")))
    return Frame(type_, "2" + packet, occurred)


@dataclass(frozen=True, slots=True)
class BusEvent:
    user_id: str
    seq: int
    frame: Frame

    @property
    def type(self) -> str:
        return self.frame.type

    @property
    def envelope(self) -> dict[str, Any]:
        """Decoded again from the packet: only for the rare reader (overlay alerts)."""
        return dict(self.frame.data)


def bus_event(event: Event) -> BusEvent:
    """An event row as a node delivers it (live, or read back from the log)."""
    return BusEvent(
        event.user_id,
        event.seq,
        frame(event.type, event.envelope(), event.occurred_at.timestamp()),
    )


def encode(event: Event) -> str:
    """A bus message: a small JSON header line, then the packet every socket gets, so that a
    node reads the header and passes the packet on without decoding or encoding it again."""
    delivered = bus_event(event)
    header = [event.user_id, event.seq, event.type, delivered.frame.occurred]
    return json.dumps(header, separators=(",", ":")) + "\n" + delivered.frame.packet


def decode(raw: bytes | str) -> BusEvent | dict[str, Any]:
    """A BusEvent, or a control message (a dict). Raises ValueError if malformed."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if text.startswith("{"):
        control = json.loads(text)["control"]
        if not isinstance(control, dict):
            raise ValueError("a control message is an object")
        return control
    header, packet = text.split("\n", 1)
    user_id, seq, type_, occurred = json.loads(header)
    if not isinstance(user_id, str) or not isinstance(type_, str) or not packet.startswith("2["):
        raise ValueError("malformed event")
    return BusEvent(user_id, int(seq), Frame(type_, packet, occurred))


async def publish(redis: Redis, events: Sequence[Event]) -> None:
    """Publish in order on one connection; raise PublishFailed if Redis did not take them."""
    if not events:
        return
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.publish(CHANNEL, encode(event))
            await pipe.execute()
    except Exception as exc:
        raise PublishFailed(f"cannot publish to Redis: {exc}") from exc


Handler = Callable[[BusEvent], Awaitable[None]]
Resubscribed = Callable[[], Awaitable[None]]
ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]


async def publish_control(redis: Redis, message: dict[str, Any]) -> None:
    """A message for every node (not an event: nothing to recover if it is lost)."""
    await redis.publish(CHANNEL, json.dumps({"control": message}, separators=(",", ":")))


class Subscriber:
    """Listens on the bus for this node; `healthy` says whether it is subscribed right now."""

    def __init__(
        self,
        redis_url: str,
        on_event: Handler,
        on_resubscribed: Resubscribed,
        on_control: ControlHandler | None = None,
    ) -> None:
        self._redis_url = redis_url
        self._on_event = on_event
        self._on_resubscribed = on_resubscribed
        self._on_control = on_control
        self._task: asyncio.Task[None] | None = None
        self.healthy = False
        self.lost_count = 0
        self.lost_at: float | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bus-subscriber")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        first = True
        while True:
            try:
                await self._listen(first)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.healthy:
                    log.warning("event bus subscription lost: %s", exc)
                    self.lost_count += 1
                    self.lost_at = time.monotonic()
                self.healthy = False
            first = False
            await asyncio.sleep(0.5)

    async def _listen(self, first: bool) -> None:
        connection = await _Subscription.open(self._redis_url)
        try:
            connection.send(b"SUBSCRIBE", CHANNEL.encode())
            pending: list[Any] = []
            deadline = time.monotonic() + DEAD_AFTER
            while not any(_kind(reply) == b"subscribe" for reply in pending):
                if time.monotonic() > deadline:
                    raise ConnectionError("Redis did not confirm the subscription")
                pending += await connection.replies(PING_EVERY)
            self.healthy = True
            if not first:
                log.info("event bus subscription restored; filling gaps from the log")
            # Whatever was published while we were away is in the log: fill every local
            # connection's gap (also on first start: nothing is lost by doing it).
            await self._on_resubscribed()
            last_answer = last_ping = time.monotonic()
            while True:
                replies, pending = pending or await connection.replies(PING_EVERY), []
                now = time.monotonic()
                if replies:
                    last_answer = now
                for reply in replies:  # every message of a read, in order
                    if _kind(reply) == b"message":
                        await self._dispatch(reply[2])
                if now - last_ping >= PING_EVERY:
                    connection.send(b"PING")
                    last_ping = now
                if now - last_answer > DEAD_AFTER:
                    raise ConnectionError(f"no answer from Redis for {DEAD_AFTER:.0f} s")
        finally:
            connection.close()

    async def _dispatch(self, raw: bytes | str) -> None:
        try:
            message = decode(raw)
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed bus message")
            return
        try:
            if isinstance(message, BusEvent):
                await self._on_event(message)
            elif self._on_control is not None:
                await self._on_control(message)
        except Exception:
            log.exception("handling a bus message failed")


def _kind(reply: Any) -> bytes | None:
    return reply[0] if isinstance(reply, list) and reply else None


class _Subscription:
    """One connection to Redis in subscribed mode, read with hiredis: each read off the socket
    is parsed at once into every reply it completes (redis-py's pub/sub client parses and
    hands over one message per call, under a timeout of its own)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._parser = hiredis.Reader()

    @classmethod
    async def open(cls, url: str) -> _Subscription:
        parts = urlsplit(url)
        async with asyncio.timeout(2):
            reader, writer = await asyncio.open_connection(
                parts.hostname or "localhost",
                parts.port or 6379,
                ssl=parts.scheme == "rediss" or None,
            )
        subscription = cls(reader, writer)
        try:
            if parts.password is not None:
                credentials = [unquote(parts.password).encode()]
                if parts.username:
                    credentials.insert(0, unquote(parts.username).encode())
                subscription.send(b"AUTH", *credentials)
                replies = await subscription.replies(2)
                if replies != [b"OK"]:
                    raise ConnectionError(f"Redis refused the credentials: {replies!r}")
        except BaseException:
            subscription.close()
            raise
        return subscription

    def send(self, *parts: bytes) -> None:
        command = [b"*%d\r\n" % len(parts)]
        for part in parts:
            command.append(b"$%d\r\n%s\r\n" % (len(part), part))
        self._writer.write(b"".join(command))

    async def replies(self, timeout: float) -> list[Any]:
        """Every complete reply already read, or those of the next read; [] after `timeout`
        seconds of silence."""
        found = self._parsed()
        if found:
            return found
        try:
            async with asyncio.timeout(timeout):
                data = await self._reader.read(65536)
        except TimeoutError:
            return []
        if not data:
            raise ConnectionError("Redis closed the subscription")
        self._parser.feed(data)
        return self._parsed()

    def _parsed(self) -> list[Any]:
        found = []
        while (reply := self._parser.gets()) is not False:
            if isinstance(reply, hiredis.ReplyError):
                raise ConnectionError(f"Redis answered the subscription with {reply}")
            found.append(reply)
        return found

    def close(self) -> None:
        self._writer.close()
