"""Reads of the server API: an app's users, and a user's log by cursor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import Role
from ledger.errors import LedgerError


class UnknownUser(LedgerError):
    pass


class CursorExpired(LedgerError):
    """The cursor is not an event of the user's log (or no longer kept)."""


@dataclass(frozen=True, slots=True)
class AppUser:
    id: str
    role: Role
    name: str | None
    email: str | None
    created_at: datetime
    banned_until: datetime | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "role": self.role.value,
            "name": self.name,
            "email": self.email,
            "created_at": self.created_at.isoformat(),
            "banned_until": self.banned_until.isoformat() if self.banned_until else None,
        }


_USER = text(
    "SELECT id, role, display_name, email, created_at, "
    "CASE WHEN banned_until > now() THEN banned_until END AS banned_until FROM users "
    "WHERE id = :user_id AND app_id = :app_id"
)


async def user_of_app(session: AsyncSession, user_id: str, app_id: str) -> AppUser | None:
    row = (await session.execute(_USER, {"user_id": user_id, "app_id": app_id})).one_or_none()
    if row is None:
        return None
    return AppUser(
        row.id, Role(row.role), row.display_name, row.email, row.created_at, row.banned_until
    )


_BAN = text(
    "UPDATE users SET banned_until = CASE WHEN CAST(:seconds AS integer) > 0 "
    "THEN now() + make_interval(secs => CAST(:seconds AS integer)) END "
    "WHERE id = :user_id AND app_id = :app_id RETURNING banned_until"
)


async def ban_user(
    session: AsyncSession, user_id: str, app_id: str, seconds: int
) -> tuple[bool, datetime | None]:
    """Ban the app's user for `seconds` from now (0: lift the ban); (found, banned until)."""
    row = (
        await session.execute(_BAN, {"user_id": user_id, "app_id": app_id, "seconds": seconds})
    ).one_or_none()
    return (row is not None, row.banned_until if row is not None else None)


_BANS = text("SELECT id, banned_until FROM users WHERE banned_until > now()")


async def bans_in_force(session: AsyncSession) -> dict[str, datetime]:
    """Every user banned now, and until when."""
    return {row.id: row.banned_until for row in await session.execute(_BANS)}


_OWNERS = text("SELECT id, app_id FROM users WHERE id = ANY(CAST(:ids AS text[]))")


async def users_of_app(session: AsyncSession, user_ids: Sequence[str], app_id: str) -> set[str]:
    """Which of `user_ids` are users of the app (a user of another app is none of them)."""
    return {
        user_id
        for user_id, owner in (await session.execute(_OWNERS, {"ids": list(user_ids)})).all()
        if owner == app_id
    }


async def missing_users(session: AsyncSession, user_ids: Sequence[str], app_id: str) -> list[str]:
    """Which of `user_ids` (stored ids of the app's users) do not exist yet, in order."""
    rows = await session.execute(_OWNERS, {"ids": list(user_ids)})
    owners = {row.id: row.app_id for row in rows}
    assert all(owner == app_id for owner in owners.values())  # a stored id names its app
    return [user_id for user_id in user_ids if user_id not in owners]


_PAGE = text(
    """
    SELECT id, seq, type, occurred_at, data FROM events
    WHERE user_id = :user_id AND seq > :after_seq
    ORDER BY seq LIMIT :limit
    """
)
_SEQ_OF = text("SELECT seq FROM events WHERE id = :id AND user_id = :user_id")


async def event_page(
    session: AsyncSession, app_id: str, user_id: str, after: int, limit: int
) -> dict[str, Any]:
    """The user's events after the event `after` (0: from the oldest kept), at most `limit`, as
    the sockets send them; `next_after` is the cursor of the next page."""
    if await user_of_app(session, user_id, app_id) is None:
        raise UnknownUser(f"no user {user_id}", param="user_id")
    after_seq = 0
    if after:
        seq = await session.scalar(_SEQ_OF, {"id": after, "user_id": user_id})
        if seq is None:
            raise CursorExpired(
                f"event {after} is not in the log of {user_id} (or no longer kept): "
                "start again from after=0",
                param="after",
            )
        after_seq = int(seq)
    rows = list(
        await session.execute(
            _PAGE, {"user_id": user_id, "after_seq": after_seq, "limit": limit + 1}
        )
    )
    more = len(rows) > limit
    rows = rows[:limit]
    data = [
        {
            "id": row.id,
            "seq": row.seq,
            "type": row.type,
            "occurred_at": row.occurred_at.isoformat(),
            "data": row.data,
        }
        for row in rows
    ]
    return {
        "user_id": user_id,
        "data": data,
        "has_more": more,
        "next_after": rows[-1].id if rows else after,
    }
