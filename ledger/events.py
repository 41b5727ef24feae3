"""The event log: rows written in the money's transaction, published after it commits."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.schema import events

# Events written public: a creator's goal and live state (`public.goal`, `public.live`,
# ledger.creators) and a platform's notifications to a creator's channel (`public.app.<type>`,
# hub/routes/platform.py). Every event of such a type is public, shown as it was written.
PUBLIC_PREFIX = "public."
PUBLIC_APP_PREFIX = "public.app."
_PUBLIC_APP = f"type LIKE '{PUBLIC_PREFIX}%'"


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    user_id: str
    seq: int
    type: str
    occurred_at: datetime
    data: Mapping[str, Any]

    def envelope(self) -> dict[str, Any]:
        """What a client receives: `id` is unique, `seq` orders one user's events."""
        return {
            "id": self.id,
            "seq": self.seq,
            "type": self.type,
            "occurred_at": self.occurred_at.isoformat(),
            "data": dict(self.data),
        }


# One statement for any number of events and users: lock the users' rows in id order (no
# deadlocks), take a block of seq numbers from each, and insert the events numbered in the
# order given. The rows stay locked until the commit.
_RECORD = text(
    """
    WITH pending AS (
        SELECT e->>'user_id' AS user_id, e->>'type' AS type, e->'data' AS data, ord
        FROM jsonb_array_elements(CAST(:pending AS jsonb)) WITH ORDINALITY AS x(e, ord)
    ), counts AS (
        SELECT user_id, count(*) AS n FROM pending GROUP BY user_id
    ), locked AS (
        SELECT users.id, counts.n FROM users JOIN counts ON counts.user_id = users.id
        ORDER BY users.id FOR UPDATE OF users
    ), bumped AS (
        UPDATE users SET event_seq = users.event_seq + locked.n
        FROM locked WHERE users.id = locked.id
        RETURNING users.id, users.event_seq AS top, locked.n
    )
    INSERT INTO events (user_id, seq, type, data)
    SELECT p.user_id, b.top - b.n + row_number() OVER (PARTITION BY p.user_id ORDER BY p.ord),
           p.type, p.data
    FROM pending p JOIN bumped b ON b.id = p.user_id
    ORDER BY p.ord
    RETURNING id, user_id, seq, type, occurred_at, data
    """
).columns(
    events.c.id, events.c.user_id, events.c.seq, events.c.type, events.c.occurred_at, events.c.data
)


async def record_events(
    session: AsyncSession, pending: Sequence[tuple[str, str, Mapping[str, Any]]]
) -> list[Event]:
    """Write (user_id, type, data) events in the caller's transaction, in one statement.

    Each user's events are numbered from that user's row, which stays locked until the commit:
    so a user's seq order is the order in which their events committed, and replay by seq can
    never skip an event that committed late. Users are locked in sorted order (no deadlocks).
    """
    if not pending:
        return []
    document = json.dumps(
        [{"user_id": user_id, "type": type_, "data": data} for user_id, type_, data in pending]
    )
    rows = list(await session.execute(_RECORD, {"pending": document}))
    if len(rows) != len(pending):
        known = {row.user_id for row in rows}
        missing = sorted({user_id for user_id, _, _ in pending} - known)
        raise AssertionError(f"unknown user {', '.join(missing)}")
    rows.sort(key=lambda row: row.id)  # ids follow the order given
    return [
        Event(
            id=r.id,
            user_id=r.user_id,
            seq=r.seq,
            type=r.type,
            occurred_at=r.occurred_at,
            data=r.data,
        )
        for r in rows
    ]


async def mark_published(session: AsyncSession, event_ids: Sequence[int]) -> None:
    await session.execute(
        update(events)
        .where(events.c.id.in_(event_ids), events.c.published_at.is_(None))
        .values(published_at=text("now()"))
    )


def _event(row: Any) -> Event:
    return Event(
        id=row.id,
        user_id=row.user_id,
        seq=row.seq,
        type=row.type,
        occurred_at=row.occurred_at,
        data=row.data,
    )


_COLUMNS = (
    events.c.id,
    events.c.user_id,
    events.c.seq,
    events.c.type,
    events.c.occurred_at,
    events.c.data,
)


@dataclass(frozen=True, slots=True)
class Position:
    """Where a user's log stands, for a connecting client: in one read."""

    newest_id: int  # 0 when the user has no events
    newest_seq: int
    oldest_seq: int | None  # the oldest kept
    since_seq: int | None  # the seq of the client's last event id, if it is theirs and kept
    newest_public_id: int | None = None  # asked for a public view: its newest event's id


# Read on every socket connect, on the driver's connection itself: one round trip for every
# connect waiting at that moment, no transaction, no statement tree (asyncpg prepares it once
# per connection). Each log's ends are read once however many of its readers ask (a creator's
# viewers arriving together). A public view (a creator's channel, realtime.channels) takes as a
# client's last id only one of its public events, and is told the newest of those.
_POSITIONS = f"""
    WITH asked AS (
        SELECT * FROM unnest($1::text[], $2::bigint[], $3::boolean[])
                      WITH ORDINALITY AS a(user_id, last_id, public, ord)
    ), logs AS (
        SELECT user_id, bool_or(public) AS public FROM asked GROUP BY user_id
    ), ends AS MATERIALIZED (
        SELECT logs.user_id, newest.id AS newest_id, newest.seq AS newest_seq,
               (SELECT min(seq) FROM events WHERE user_id = logs.user_id) AS oldest_seq,
               CASE WHEN logs.public THEN (
                   SELECT id FROM events
                   WHERE user_id = logs.user_id AND (type = ANY($4::text[]) OR {_PUBLIC_APP})
                   ORDER BY seq DESC LIMIT 1
               ) END AS newest_public_id
        FROM logs
        LEFT JOIN LATERAL (
            SELECT id, seq FROM events WHERE user_id = logs.user_id ORDER BY seq DESC LIMIT 1
        ) AS newest ON true
    )
    SELECT ends.newest_id, ends.newest_seq, ends.oldest_seq, ends.newest_public_id,
           (SELECT seq FROM events
            WHERE id = asked.last_id AND user_id = asked.user_id
              AND (NOT asked.public OR type = ANY($4::text[]) OR {_PUBLIC_APP})) AS since_seq
    FROM asked JOIN ends ON ends.user_id = asked.user_id
    ORDER BY asked.ord
"""


async def positions(
    connection: Any,
    asked: Sequence[tuple[str, int | None, bool]],
    public_types: Sequence[str] = (),
) -> list[Position]:
    """Where each (user_id, last event id, public view) of `asked` stands, in order, in one
    statement; `public_types` are the types a public view shows (with every type of
    PUBLIC_PREFIX). `connection` is an asyncpg
    connection."""
    rows = await connection.fetch(
        _POSITIONS,
        [user for user, _, _ in asked],
        [last or 0 for _, last, _ in asked],
        [public for _, _, public in asked],
        list(public_types),
    )
    return [
        Position(
            newest_id=row["newest_id"] or 0,
            newest_seq=row["newest_seq"] or 0,
            oldest_seq=row["oldest_seq"],
            since_seq=row["since_seq"],
            newest_public_id=row["newest_public_id"],
        )
        for row in rows
    ]


_BETWEEN = f"""
    SELECT id, user_id, seq, type, occurred_at, data FROM events
    WHERE user_id = $1 AND seq > $2 AND seq < $3
      AND ($5::text[] IS NULL OR type = ANY($5) OR {_PUBLIC_APP})
    ORDER BY seq LIMIT $4
"""


async def events_between(
    connection: Any,
    user_id: str,
    after_seq: int,
    before_seq: int | None,
    limit: int,
    types: Sequence[str] | None = None,
) -> list[Event]:
    """The user's events with after_seq < seq < before_seq (of `types` and PUBLIC_PREFIX
    only, if given), in seq
    order, at most `limit`; `connection` is an asyncpg connection."""
    before = before_seq if before_seq is not None else 2**63 - 1
    wanted = list(types) if types is not None else None
    rows = await connection.fetch(_BETWEEN, user_id, after_seq, before, limit, wanted)
    return [
        Event(
            id=row["id"],
            user_id=row["user_id"],
            seq=row["seq"],
            type=row["type"],
            occurred_at=row["occurred_at"],
            data=_json(row["data"]),
        )
        for row in rows
    ]


def _json(value: Any) -> Any:
    """A jsonb value from asyncpg: text on a plain connection, already decoded on one of
    SQLAlchemy's (its dialect sets a codec)."""
    return json.loads(value) if isinstance(value, str) else value


async def claim_unpublished(
    session: AsyncSession, older_than_seconds: float, limit: int
) -> list[Event]:
    """Unpublished events older than the given age, locked for this transaction (SKIP LOCKED:
    several sweepers share the work and none republishes what another holds)."""
    rows = await session.execute(
        select(*_COLUMNS)
        .where(
            events.c.published_at.is_(None),
            events.c.occurred_at
            < func.now() - func.make_interval(0, 0, 0, 0, 0, 0, older_than_seconds),
        )
        .order_by(events.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return [_event(row) for row in rows]
