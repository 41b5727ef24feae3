"""analytics.rollup (cron): refresh the daily revenue rollups of the last two UTC days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.analytics import roll_up
from ledger.db import unit_of_work

NAME = "analytics.rollup"


async def rollup(ctx: dict[str, Any], days: int = 2) -> str:
    since = (datetime.now(UTC) - timedelta(days=days - 1)).date()
    async with unit_of_work(ctx["sessions"]) as uow:
        await roll_up(uow.session, since)
    return since.isoformat()
