"""Delivery to this node's sockets: at least once and in order per user, with recovery.

Each connection knows the last seq it was sent. A live event with the next seq is sent; an
older one is a duplicate and dropped; a newer one means something was missed (a lost pub/sub
message, or two publishers racing), and the gap is read from the event log first. Because a
user's seqs are numbered in commit order under a row lock, every seq below one that exists is
already committed: reading the gap always finds it, and nothing is skipped.

On connect, a client may send the id of the last event it saw. Its connection buffers live
events while the missed ones are replayed from the log, then `recovered` tells the outcome:
`{recovered: true}` after a complete replay, or `{recovered: false}` when the gap reaches past
what the log keeps (the client refetches its state over HTTP). Never a partial replay.

A socket viewing a creator's page also follows that creator's public channel
(realtime.channels): a second connection on the creator's log, which sends only the public
projection of each event (skipping the private ones, whose seqs it passes all the same) and
answers its recovery with `public.recovered`, by the same rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from ledger.events import Event, Position, events_between, positions
from realtime.bus import BusEvent, Frame, bus_event, frame
from realtime.channels import PUBLIC_TYPES, public_frame
from realtime.coalesce import Coalescer

log = logging.getLogger(__name__)

MAX_REPLAY = 5_000  # a larger gap is answered with recovered: false (refetch over HTTP)
SHARED_GAPS = 64  # public views' fills remembered for the next viewer missing the same events

Send = Callable[[str, Frame], Awaitable[bool]]  # (sid, frame) → still open
# The same, at once, for a socket that takes a frame without waiting (Hub's own endpoint):
# None for one that must be awaited.
SendNow = Callable[[str, Frame], bool | None]


@dataclass(eq=False)
class Connection:
    sid: str
    user_id: str  # whose log it follows
    public: bool = False  # only that log's public view: a creator's channel
    delivered: int = 0  # the seq of the last event sent (or passed, for a public view)
    recovering: bool = True
    buffer: list[BusEvent] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    closed: bool = False


class Delivery:
    """Reads the log on a read-only asyncpg pool of its own (`start`): a connect storm's reads
    never wait on the connections money commits on, nor hold them."""

    def __init__(
        self,
        send: Send,
        *,
        send_now: SendNow | None = None,
        acquire_timeout: float = 2.0,
    ) -> None:
        self._pool: asyncpg.Pool | None = None
        self._acquire_timeout = acquire_timeout
        self._send = send
        self._send_now = send_now
        # Every connect reads its position: those waiting together go in one statement.
        self._positions = Coalescer(self._read_positions)
        self._by_sid: dict[str, list[Connection]] = {}
        self._by_user: dict[str, set[Connection]] = {}
        self.sent = 0
        self.gap_fills = 0
        self.recoveries = 0
        self.log_reads = 0  # reads of the log for fills (a shared one counts once)
        # A gap below a known seq never changes once read (every event under it had committed),
        # so the viewers of one creator, who miss the same events, share one read of them.
        self._gaps: OrderedDict[tuple[str, int, int, bool], list[Event]] = OrderedDict()

    def start(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @property
    def count(self) -> int:
        return len(self._by_sid)

    def attach(self, sid: str, user_id: str, *, public: bool = False) -> Connection:
        """Register before anything is read from the log, so no live event can slip between
        the replay and the live stream (it is buffered meanwhile)."""
        connection = Connection(sid=sid, user_id=user_id, public=public)
        self._by_sid.setdefault(sid, []).append(connection)
        self._by_user.setdefault(user_id, set()).add(connection)
        return connection

    def sids_of(self, user_id: str) -> list[str]:
        """This node's sockets of the user (not those viewing the user's channel)."""
        return [c.sid for c in self._by_user.get(user_id, ()) if not c.public]

    def detach(self, sid: str) -> None:
        for connection in self._by_sid.pop(sid, ()):
            connection.closed = True
            peers = self._by_user.get(connection.user_id)
            if peers is not None:
                peers.discard(connection)
                if not peers:
                    del self._by_user[connection.user_id]

    async def recover(self, connection: Connection, last_event_id: int | None) -> None:
        self.recoveries += 1
        async with connection.lock:
            recovered, missed = await self._replay(connection, last_event_id)
            if connection.closed:
                return
            outcome = {"recovered": recovered, **missed}
            if connection.public:
                outcome = {"channel": connection.user_id, **outcome}
            kind = "public.recovered" if connection.public else "recovered"
            await self._send_raw(connection, frame(kind, outcome))
            connection.recovering = False
            buffered, connection.buffer = connection.buffer, []
            for event in sorted(buffered, key=lambda e: e.seq):
                await self._deliver(connection, event)

    async def _replay(
        self, connection: Connection, last_event_id: int | None
    ) -> tuple[bool, dict[str, Any]]:
        user = connection.user_id
        where = await self._positions.submit((user, last_event_id, connection.public))
        # nothing is sent before this: live events wait in the buffer until the recovery ends
        newest_seq = where.newest_seq
        # the cursor a client keeps: for a public view, the newest public event (0: none yet,
        # so a later replay from 0 brings everything public that came after)
        newest_id = (where.newest_public_id or 0) if connection.public else where.newest_id
        if last_event_id is None:
            # A fresh client: nothing to replay. Its position is the newest event, which it
            # keeps as its last id even if it receives nothing before a reconnect.
            connection.delivered = newest_seq
            return True, {"missed": 0, "last_event_id": newest_id}
        since = 0 if last_event_id == 0 else where.since_seq
        oldest = where.oldest_seq
        gap_kept = since is not None and (
            newest_seq <= since or oldest is None or oldest <= since + 1
        )
        missed = []
        if gap_kept and since is not None and newest_seq > since:
            async with self._connection() as driver:
                missed = await events_between(
                    driver, user, since, None, MAX_REPLAY + 1, self._types(connection)
                )
        if not gap_kept or len(missed) > MAX_REPLAY:
            connection.delivered = newest_seq
            return False, {"missed": None, "last_event_id": newest_id}
        sent, last_id = 0, last_event_id or newest_id
        for event in missed:
            outbound = self._outbound(connection, bus_event(event))
            if outbound is not None:
                if not await self._send_raw(connection, outbound):
                    return False, {}
                sent, last_id = sent + 1, event.id
            connection.delivered = event.seq
        # A public view read its kind of events only; every event up to the position read
        # before them had committed, so it is past all of those too.
        connection.delivered = max(connection.delivered, newest_seq)
        return True, {"missed": sent, "last_event_id": last_id}

    @staticmethod
    def _types(connection: Connection) -> list[str] | None:
        """The types a connection's reads of the log ask for: a public view's only."""
        return list(PUBLIC_TYPES) if connection.public else None

    @staticmethod
    def _outbound(connection: Connection, event: BusEvent) -> Frame | None:
        """What the connection sends of an event: all of it, or its public view (if any)."""
        return public_frame(event) if connection.public else event.frame

    async def _read_positions(
        self, asked: Sequence[tuple[str, int | None, bool]]
    ) -> list[Position]:
        async with self._connection() as driver:
            return await positions(driver, asked, list(PUBLIC_TYPES))

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        """The log's reads are one round trip each, outside any transaction."""
        if self._pool is None:
            raise RuntimeError("delivery reads the log only once started")
        async with self._pool.acquire(timeout=self._acquire_timeout) as connection:
            yield connection

    async def on_event(self, event: BusEvent) -> None:
        followers = self._by_user.get(event.user_id)
        if not followers:
            return
        # What each kind of follower gets, worked out once for all of them.
        outbound: dict[bool, Frame | None] = {}
        for connection in list(followers):
            if connection.recovering:
                connection.buffer.append(event)
                continue
            if (
                event.seq == connection.delivered + 1
                and not connection.lock.locked()
                and self._send_now is not None
                and not connection.closed
            ):
                # The common case, in one go and without a suspension point (so in order): the
                # next event, for a socket nothing else is sending to, that takes it at once.
                public = connection.public
                if public not in outbound:
                    outbound[public] = self._outbound(connection, event)
                shown = outbound[public]
                if shown is None:
                    connection.delivered = event.seq
                    continue
                sent = self._send_now(connection.sid, shown)
                if sent is not None:
                    if sent:
                        self.sent += 1
                        connection.delivered = event.seq
                    else:
                        connection.closed = True
                    continue
            async with connection.lock:
                await self._deliver(connection, event)

    async def fill_gaps(self) -> None:
        """Send every local connection what the log has beyond its position (after this node's
        subscription was down, or on demand)."""
        for connections in list(self._by_sid.values()):
            for connection in connections:
                if connection.recovering:
                    continue
                async with connection.lock:
                    await self._fill(connection, None)

    async def _deliver(self, connection: Connection, event: BusEvent) -> None:
        if event.seq <= connection.delivered or connection.closed:
            return  # a duplicate: already sent
        if event.seq > connection.delivered + 1:
            self.gap_fills += 1
            await self._fill(connection, event.seq)
            if event.seq <= connection.delivered:
                return
        outbound = self._outbound(connection, event)
        if outbound is None or await self._send_raw(connection, outbound):
            connection.delivered = event.seq

    async def _fill(self, connection: Connection, before_seq: int | None) -> None:
        while not connection.closed:
            missing = await self._between(connection, before_seq)
            for event in missing:
                outbound = self._outbound(connection, bus_event(event))
                if outbound is not None and not await self._send_raw(connection, outbound):
                    return
                connection.delivered = event.seq
            if len(missing) < 500:
                if connection.public and before_seq is not None:
                    # every event below `before_seq` had committed: the view is past them all
                    connection.delivered = max(connection.delivered, before_seq - 1)
                return

    async def _between(self, connection: Connection, before_seq: int | None) -> list[Event]:
        """The next events of a fill, at most 500; one read for all the public views that miss
        the same ones below a known seq (the viewers of a creator, after a lost bus message)."""
        key = (connection.user_id, connection.delivered, before_seq or 0, connection.public)
        shared = connection.public and before_seq is not None
        if shared and key in self._gaps:
            self._gaps.move_to_end(key)
            return self._gaps[key]
        self.log_reads += 1
        async with self._connection() as driver:
            missing = await events_between(
                driver,
                connection.user_id,
                connection.delivered,
                before_seq,
                500,
                self._types(connection),
            )
        if shared:
            self._gaps[key] = missing
            if len(self._gaps) > SHARED_GAPS:
                self._gaps.popitem(last=False)
        return missing

    async def _send_raw(self, connection: Connection, frame: Frame) -> bool:
        if connection.closed:
            return False
        open_ = await self._send(connection.sid, frame)
        if open_:
            self.sent += 1
        else:
            connection.closed = True
        return open_
