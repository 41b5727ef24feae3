"""A creator's public state: a tipping goal, with its progress read from the ledger, and
whether they are live now. Each change is a `public.goal` or `public.live` event of the
creator's log, so their public channel carries it (realtime.channels)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.events import Event, record_events

_GOAL = text(
    """
    SELECT g.title, g.target, g.currency, g.started_at,
           coalesce((SELECT sum(t.amount) FROM tips t
                     WHERE t.creator_id = g.creator_id AND t.transfer_id > g.after_transfer_id
                       AND t.currency = g.currency), 0) AS raised
    FROM creator_goals g WHERE g.creator_id = :creator
    """
)


async def goal_of(session: AsyncSession, creator_id: str) -> dict[str, Any] | None:
    """The creator's goal and what it raised so far (tips since it started, gross), or None."""
    row = (await session.execute(_GOAL, {"creator": creator_id})).one_or_none()
    if row is None:
        return None
    return {
        "title": row.title,
        "target": row.target,
        "currency": row.currency,
        "raised": int(row.raised),
        "started_at": row.started_at.isoformat(),
    }


async def set_goal(
    session: AsyncSession, creator_id: str, title: str, target: int, currency: str
) -> tuple[dict[str, Any], list[Event]]:
    """Start a goal (replacing any): it counts the tips from now on."""
    await session.execute(
        text(
            """
            INSERT INTO creator_goals (creator_id, title, target, currency, after_transfer_id)
            VALUES (:creator, :title, :target, :currency,
                    (SELECT coalesce(max(id), 0) FROM transfers))
            ON CONFLICT (creator_id) DO UPDATE SET
                title = excluded.title, target = excluded.target, currency = excluded.currency,
                started_at = now(), after_transfer_id = excluded.after_transfer_id
            """
        ),
        {"creator": creator_id, "title": title, "target": target, "currency": currency},
    )
    goal = await goal_of(session, creator_id)
    assert goal is not None
    events = await record_events(session, [(creator_id, "public.goal", {"goal": goal})])
    return goal, events


async def end_goal(session: AsyncSession, creator_id: str) -> list[Event]:
    ended = await session.scalar(
        text("DELETE FROM creator_goals WHERE creator_id = :creator RETURNING creator_id"),
        {"creator": creator_id},
    )
    if ended is None:
        return []
    return await record_events(session, [(creator_id, "public.goal", {"goal": None})])


async def live_of(session: AsyncSession, creator_id: str) -> dict[str, Any] | None:
    row = (
        await session.execute(
            text("SELECT live_since, live_title FROM users WHERE id = :creator"),
            {"creator": creator_id},
        )
    ).one_or_none()
    if row is None or row.live_since is None:
        return None
    return {"since": _iso(row.live_since), "title": row.live_title}


async def set_live(
    session: AsyncSession, creator_id: str, live: bool, title: str | None
) -> tuple[dict[str, Any] | None, list[Event]]:
    """Go live (with a title) or offline; an event only when something changed."""
    before = await live_of(session, creator_id)
    await session.execute(
        text(
            "UPDATE users SET live_since = CASE WHEN :live THEN coalesce(live_since, now()) END, "
            "live_title = CASE WHEN :live THEN :title END WHERE id = :creator"
        ),
        {"creator": creator_id, "live": live, "title": title},
    )
    now = await live_of(session, creator_id)
    if now == before:
        return now, []
    data = {"live": now is not None, "since": now["since"] if now else None, "title": title}
    return now, await record_events(session, [(creator_id, "public.live", data)])


def _iso(moment: datetime) -> str:
    return moment.isoformat()
