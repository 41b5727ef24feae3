"""The platform fee setting: its history in PostgreSQL; the latest change is in force."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.errors import InvalidFee
from ledger.schema import platform_fee_changes

MAX_FEE_BPS = 5_000


async def current_fee_bps(session: AsyncSession, default: int) -> int:
    """The fee in force: the latest admin change, else `default` (the HUB_PLATFORM_FEE_BPS)."""
    bps = await session.scalar(
        select(platform_fee_changes.c.bps).order_by(platform_fee_changes.c.id.desc()).limit(1)
    )
    return default if bps is None else int(bps)


async def set_fee_bps(session: AsyncSession, bps: int, changed_by: str) -> int:
    if not 0 <= bps <= MAX_FEE_BPS:
        raise InvalidFee(f"bps must be between 0 and {MAX_FEE_BPS}", param="bps")
    await session.execute(platform_fee_changes.insert().values(bps=bps, changed_by=changed_by))
    return bps
