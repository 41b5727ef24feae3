"""Overlay keys: a creator's secret for the public tip-alert page of their streaming software.

Only a hash is stored; the key is shown once when made. Revoking (or rotating, which makes a
new key and revokes the old in one transaction) stops it at once for new connections; live
overlay connections are cut by the realtime layer.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import LedgerError
from ledger.schema import overlay_keys

PREFIX = "ovl_"


class UnknownOverlayKey(LedgerError):
    pass


class TooManyOverlayKeys(LedgerError):
    pass


@dataclass(frozen=True, slots=True)
class OverlayKey:
    id: int
    creator_id: str
    label: str | None
    created_at: datetime
    revoked_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def create_key(
    session: AsyncSession, creator_id: str, label: str | None, *, limit: int
) -> tuple[OverlayKey, str]:
    """A new key for the creator: (its record, the key itself — shown this once). A creator
    holds at most `limit` keys that are not revoked (TooManyOverlayKeys); the count is taken
    under a lock on the creator's keys, so concurrent requests cannot pass it together."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:scope, 0))"),
        {"scope": f"overlay-keys:{creator_id}"},
    )
    active = await session.scalar(
        select(func.count())
        .select_from(overlay_keys)
        .where(overlay_keys.c.creator_id == creator_id, overlay_keys.c.revoked_at.is_(None))
    )
    if (active or 0) >= limit:
        raise TooManyOverlayKeys(
            f"at most {limit} overlay keys at a time: revoke one you no longer use"
        )
    key = PREFIX + secrets.token_urlsafe(24)
    row = (
        await session.execute(
            overlay_keys.insert()
            .values(creator_id=creator_id, key_hash=_hash(key), label=label)
            .returning(*overlay_keys.c)
        )
    ).one()
    return _key(row), key


async def list_keys(session: AsyncSession, creator_id: str) -> list[OverlayKey]:
    rows = await session.execute(
        select(overlay_keys)
        .where(overlay_keys.c.creator_id == creator_id)
        .order_by(overlay_keys.c.id)
    )
    return [_key(row) for row in rows]


async def revoke_key(session: AsyncSession, creator_id: str, key_id: int) -> OverlayKey:
    row = (
        await session.execute(
            update(overlay_keys)
            .where(overlay_keys.c.id == key_id, overlay_keys.c.creator_id == creator_id)
            .values(revoked_at=func.coalesce(overlay_keys.c.revoked_at, func.now()))
            .returning(*overlay_keys.c)
        )
    ).one_or_none()
    if row is None:
        raise UnknownOverlayKey("no such overlay key", param="key_id")
    return _key(row)


async def find_active(session: AsyncSession, key: str) -> OverlayKey | None:
    if not key.startswith(PREFIX) or len(key) > 100 or not key.isascii():
        return None
    row = (
        await session.execute(
            select(overlay_keys).where(
                overlay_keys.c.key_hash == _hash(key), overlay_keys.c.revoked_at.is_(None)
            )
        )
    ).one_or_none()
    return _key(row) if row is not None else None


def _key(row: Any) -> OverlayKey:
    return OverlayKey(
        id=row.id,
        creator_id=row.creator_id,
        label=row.label,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
