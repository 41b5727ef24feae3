"""Admin analytics, served from the daily rollups and indexed ranges."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from hub import responses
from hub.errors import ApiError
from hub.http import check_currency, day, hub_of, json_response, query_int
from hub.openapi import operation, query
from ledger.analytics import PERIODS, payment_success, revenue, top_creators
from ledger.db import unit_of_work

MAX_DAYS = 3_660


def _range(request: Request) -> tuple[date, date]:
    end = day(request, "to", datetime.now(UTC).date())
    start = day(request, "from", end - timedelta(days=29))
    if start > end or (end - start).days > MAX_DAYS:
        raise ApiError(422, "invalid_request", "from must be before to, at most 10 years", "from")
    return start, end


@operation(
    "Gross volume and platform fees per day, week or month (admins; from rollups)",
    {
        "200": "{period, from, to, data: [{period_start, currency, gross, ...}]}",
        "403": "Not an admin",
        "422": "A bad period, date or currency",
    },
    params=[
        query("period", {"enum": ["day", "week", "month"]}, "Default day"),
        query("from", {"type": "string", "format": "date"}, "Default 30 days ago"),
        query("to", {"type": "string", "format": "date"}, "Default today (UTC)"),
        query("currency", {"type": "string"}, "All when absent"),
    ],
    returns=responses.RevenueReport,
)
async def revenue_report(request: Request) -> Response:
    """Gross volume and platform fees per day, week or month over a range."""
    hub = hub_of(request)
    period = request.query_params.get("period", "day")
    if period not in PERIODS:
        raise ApiError(422, "invalid_request", "period: day, week or month", "period")
    currency = request.query_params.get("currency")
    if currency is not None:
        await check_currency(hub, currency)
    start, end = _range(request)
    async with unit_of_work(hub.read_sessions) as uow:
        rows = await revenue(uow.session, period, start, end, currency)
    return json_response(
        {"period": period, "from": start.isoformat(), "to": end.isoformat(), "data": rows}
    )


@operation(
    "Top creators by earnings over a range (admins; from rollups)",
    {
        "200": "{currency, from, to, data: [{creator_id, earnings}]}",
        "403": "Not an admin",
        "422": "A bad date, currency or limit",
    },
    returns=responses.TopCreatorsReport,
)
async def top_creators_report(request: Request) -> Response:
    hub = hub_of(request)
    currency = request.query_params.get("currency", hub.settings.currencies[0])
    await check_currency(hub, currency)
    limit = query_int(request, "limit", 10)
    if limit is None or not 1 <= limit <= 100:
        raise ApiError(422, "invalid_request", "limit: 1 to 100", "limit")
    start, end = _range(request)
    async with unit_of_work(hub.read_sessions) as uow:
        rows = await top_creators(uow.session, start, end, currency, limit)
    return json_response(
        {"currency": currency, "from": start.isoformat(), "to": end.isoformat(), "data": rows}
    )


@operation(
    "Payment success rate per provider over a range (admins)",
    {
        "200": "{from, to, data: [{provider, started, succeeded, failed, ...}]}",
        "403": "Not an admin",
        "422": "A bad date",
    },
    returns=responses.PaymentsReport,
)
async def payments_report(request: Request) -> Response:
    """Payment success rate per provider over a range (users connected now: /api/v1/presence)."""
    hub = hub_of(request)
    start, end = _range(request)
    async with unit_of_work(hub.read_sessions) as uow:
        rows = await payment_success(uow.session, start, end)
    return json_response({"from": start.isoformat(), "to": end.isoformat(), "data": rows})
