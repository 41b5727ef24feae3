"""Users as others see them: id, role and display name."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.accounts import DEFAULT_APP, Role
from ledger.errors import UnknownCreator


@dataclass(frozen=True, slots=True)
class User:
    id: str
    role: Role
    name: str | None


_USER = text("SELECT id, role, display_name FROM users WHERE id = :user_id AND app_id = :app_id")


async def find_user(session: AsyncSession, user_id: str, app_id: str = DEFAULT_APP) -> User | None:
    """The user `user_id` of the app `app_id` (None: no such user in that app)."""
    row = (await session.execute(_USER, {"user_id": user_id, "app_id": app_id})).one_or_none()
    return User(row.id, Role(row.role), row.display_name) if row is not None else None


async def app_of(session: AsyncSession, user_id: str) -> str | None:
    """The app the user `user_id` belongs to (None: no such user)."""
    found: str | None = await session.scalar(
        text("SELECT app_id FROM users WHERE id = :user_id"), {"user_id": user_id}
    )
    return found


async def get_creator(session: AsyncSession, creator_id: str, app_id: str = DEFAULT_APP) -> User:
    """The creator `creator_id` of the app; UnknownCreator when there is no such user there or
    not a creator."""
    user = await find_user(session, creator_id, app_id)
    if user is None or user.role is not Role.CREATOR:
        raise UnknownCreator(f"no creator {creator_id}", param="creator_id")
    return user
