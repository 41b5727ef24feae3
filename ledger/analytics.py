"""Revenue rollups (daily, per currency and per creator) and the reports read from them.

The rollup job recomputes the last days from the tips and sales tables through their time
indexes; reports read the small daily tables, never the ledger itself. Days are UTC. Gross is
what fans paid for tips and pay-per-view, fees the platform's share; later refunds do not
rewrite past days (they are in the ledger and in each creator's statement).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from ledger.ids import owner_of

PERIODS = ("day", "week", "month")

_ROLLUP_REVENUE = text(
    """
    INSERT INTO revenue_daily (day, currency, gross, fees, tips, sales)
    SELECT day, currency, sum(amount), sum(fee),
           count(*) FILTER (WHERE kind = 'tip'), count(*) FILTER (WHERE kind = 'sale')
    FROM (
        SELECT (created_at AT TIME ZONE 'UTC')::date AS day, currency, amount, fee, 'tip' AS kind
        FROM tips WHERE created_at >= :since
        UNION ALL
        SELECT (created_at AT TIME ZONE 'UTC')::date, currency, amount, fee, 'sale'
        FROM entitlements WHERE created_at >= :since
    ) sold
    GROUP BY day, currency
    ON CONFLICT (day, currency) DO UPDATE SET gross = excluded.gross, fees = excluded.fees,
        tips = excluded.tips, sales = excluded.sales
    """
)

_ROLLUP_CREATORS = text(
    """
    INSERT INTO creator_daily (day, creator_id, currency, net)
    SELECT day, creator_id, currency, sum(net)
    FROM (
        SELECT (created_at AT TIME ZONE 'UTC')::date AS day, creator_id, currency,
               amount - fee AS net
        FROM tips WHERE created_at >= :since
        UNION ALL
        SELECT (e.created_at AT TIME ZONE 'UTC')::date, c.creator_id, e.currency,
               e.amount - e.fee
        FROM entitlements e JOIN content c ON c.id = e.content_id
        WHERE e.created_at >= :since
    ) earned
    GROUP BY day, creator_id, currency
    ON CONFLICT (day, creator_id, currency) DO UPDATE SET net = excluded.net
    """
)


async def roll_up(session: AsyncSession, since: date) -> None:
    """Recompute every day from `since` (UTC) on; idempotent, safe to run again."""
    params = {"since": datetime.combine(since, time.min, tzinfo=UTC)}
    await session.execute(_ROLLUP_REVENUE, params)
    await session.execute(_ROLLUP_CREATORS, params)


async def revenue(
    session: AsyncSession, period: str, start: date, end: date, currency: str | None
) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            """
            SELECT date_trunc(:period, day)::date AS period_start, currency,
                   sum(gross) AS gross, sum(fees) AS fees, sum(tips) AS tips, sum(sales) AS sales
            FROM revenue_daily
            WHERE day BETWEEN :start AND :end
              AND (CAST(:currency AS text) IS NULL OR currency = :currency)
            GROUP BY 1, 2 ORDER BY 1, 2
            """
        ),
        {"period": period, "start": start, "end": end, "currency": currency},
    )
    return [
        {
            "period_start": row.period_start.isoformat(),
            "currency": row.currency,
            "gross": int(row.gross),
            "platform_fees": int(row.fees),
            "tips": int(row.tips),
            "sales": int(row.sales),
        }
        for row in rows
    ]


async def top_creators(
    session: AsyncSession, start: date, end: date, currency: str, limit: int
) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(
            """
            SELECT creator_id, sum(net) AS earned FROM creator_daily
            WHERE currency = :currency AND day BETWEEN :start AND :end
            GROUP BY creator_id ORDER BY earned DESC, creator_id LIMIT :limit
            """
        ),
        {"currency": currency, "start": start, "end": end, "limit": limit},
    )
    return [{"creator_id": row.creator_id, "earnings": int(row.earned)} for row in rows]


async def payment_success(session: AsyncSession, start: date, end: date) -> list[dict[str, Any]]:
    """Per provider account (the deployment's, or an app's own: ledger.app_providers): payments
    started in the range and how they ended (an index range scan)."""
    rows = await session.execute(
        text(
            """
            SELECT provider,
                   count(*) AS started,
                   count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
                   count(*) FILTER (WHERE status = 'failed') AS failed
            FROM payments
            WHERE created_at >= :start AND created_at < :end
            GROUP BY provider ORDER BY provider
            """
        ),
        {
            "start": datetime.combine(start, time.min, tzinfo=UTC),
            "end": datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC),
        },
    )
    result = []
    for row in rows:
        settled = row.succeeded + row.failed
        app_id, provider = owner_of(row.provider)
        result.append(
            {
                "provider": provider,
                "app_id": app_id,  # whose account: "default" for the deployment's
                "started": row.started,
                "succeeded": row.succeeded,
                "failed": row.failed,
                "pending": row.started - settled,
                "success_rate": round(row.succeeded / settled, 4) if settled else None,
            }
        )
    return result
