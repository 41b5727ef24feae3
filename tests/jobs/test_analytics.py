"""The rollup job and the admin analytics read from it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from jobs.analytics import rollup
from ledger.accounts import Role
from ledger.money import Money
from tests.conftest import auth, create_user
from tests.money import deliver, key, start_topup


async def test_revenue_and_top_creators_come_from_the_rollups(http, sessions, uid) -> None:
    fan, creator, admin = uid("fan"), uid("creator"), auth(uid("admin"), "admin")
    await create_user(sessions, creator, Role.CREATOR)
    await create_user(sessions, fan, Role.FAN, fund=Money(90_000_000, "USD"))
    response = await http.post(
        "/api/v1/tips",
        json={"creator_id": creator, "amount": 80_000_000, "currency": "USD"},
        headers={**auth(fan, "fan"), **key()},
    )
    assert response.status_code == 201
    await rollup({"sessions": sessions})
    today = datetime.now(UTC).date().isoformat()

    async with sessions() as session:
        expected = (
            await session.execute(
                text(
                    "SELECT coalesce(sum(amount), 0) AS gross, coalesce(sum(fee), 0) AS fees FROM ("
                    " SELECT amount, fee FROM tips WHERE currency = 'USD'"
                    "   AND (created_at AT TIME ZONE 'UTC')::date = CAST(:d AS date)"
                    " UNION ALL SELECT amount, fee FROM entitlements WHERE currency = 'USD'"
                    "   AND (created_at AT TIME ZONE 'UTC')::date = CAST(:d AS date)) x"
                ),
                {"d": datetime.now(UTC).date()},
            )
        ).one()
    report = await http.get(
        "/api/v1/admin/analytics/revenue",
        params={"period": "day", "from": today, "to": today, "currency": "USD"},
        headers=admin,
    )
    assert report.status_code == 200, report.text
    [day] = report.json()["data"]
    assert (day["gross"], day["platform_fees"]) == (expected.gross, expected.fees)
    monthly = await http.get(
        "/api/v1/admin/analytics/revenue",
        params={"period": "month", "currency": "USD"},
        headers=admin,
    )
    assert sum(r["gross"] for r in monthly.json()["data"]) >= 80_000_000

    top = await http.get(
        "/api/v1/admin/analytics/top-creators",
        params={"currency": "USD", "from": today, "to": today, "limit": 3},
        headers=admin,
    )
    assert top.json()["data"][0] == {"creator_id": creator, "earnings": 72_000_000}
    await rollup({"sessions": sessions})  # again: the same figures, not doubled
    again = await http.get(
        "/api/v1/admin/analytics/revenue",
        params={"period": "day", "from": today, "to": today, "currency": "USD"},
        headers=admin,
    )
    assert again.json()["data"] == [day]


async def test_payment_success_rate_and_guards(http, sandbox, uid) -> None:
    admin = auth(uid("admin"), "admin")
    ok = await start_topup(http, uid("fan"), 1_000, "paystack")
    await deliver(sandbox, f"checkout/{ok['reference']}", outcome="succeeded")
    report = await http.get("/api/v1/admin/analytics/payments", headers=admin)
    rows = report.json()["data"]
    paystack = next(r for r in rows if (r["provider"], r["app_id"]) == ("paystack", "default"))
    assert paystack["succeeded"] >= 1 and 0 < paystack["success_rate"] <= 1
    for params in (
        {"period": "year"},
        {"from": "2026-13-01"},
        {"from": "2026-02-01", "to": "2026-01-01"},
    ):
        bad = await http.get("/api/v1/admin/analytics/revenue", params=params, headers=admin)
        assert bad.status_code == 422, params
    fan = await http.get("/api/v1/admin/analytics/revenue", headers=auth(uid("fan"), "fan"))
    assert fan.status_code == 403
