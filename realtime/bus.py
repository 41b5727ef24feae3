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

from redis.asyncio import Redis

from ledger.events import Event

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
    return Frame(type_, "2" + json.dumps([type_, data], separators=(",", ":")), occurred)


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
        redis = Redis.from_url(self._redis_url, socket_connect_timeout=2, socket_timeout=DEAD_AFTER)
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(CHANNEL)
                self.healthy = True
                if not first:
                    log.info("event bus subscription restored; filling gaps from the log")
                # Whatever was published while we were away is in the log: fill every local
                # connection's gap (also on first start: nothing is lost by doing it).
                await self._on_resubscribed()
                last_answer = last_ping = time.monotonic()
                while True:
                    message = await pubsub.get_message(timeout=PING_EVERY)
                    now = time.monotonic()
                    if message is not None:
                        last_answer = now
                        if message["type"] == "message":
                            await self._dispatch(message["data"])
                    if now - last_ping >= PING_EVERY:
                        await pubsub.ping()
                        last_ping = now
                    if now - last_answer > DEAD_AFTER:
                        raise ConnectionError(f"no answer from Redis for {DEAD_AFTER:.0f} s")
        finally:
            with contextlib.suppress(Exception):
                await redis.aclose()

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
