"""The route table of the HTTP API, and health."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.http import hub_of, json_response
from hub.metrics import metrics
from hub.openapi import openapi_document
from hub.routes import (
    admin,
    analytics,
    content,
    live,
    money,
    outbound,
    payments,
    payouts,
    platform,
    push,
    users,
    webhooks,
)


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    hub = hub_of(request)

    async def postgresql() -> None:
        async with hub.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def redis() -> None:
        await hub.redis.ping()

    checks: dict[str, str] = {}
    for name, probe in (("postgresql", postgresql), ("redis", redis)):
        try:
            await asyncio.wait_for(probe(), timeout=2)
            checks[name] = "ok"
        except Exception as exc:
            checks[name] = f"down: {type(exc).__name__}"
    # The node must hear the event bus, or its sockets only get events by gap-filling.
    checks["event_bus"] = "ok" if hub.realtime.ready else "down: not subscribed"
    down = [name for name, state in checks.items() if state != "ok"]
    body: dict[str, Any] = {"status": "unavailable" if down else "ready", "checks": checks}
    if down:
        body["error"] = {
            "type": "service_unavailable",
            "message": f"{' and '.join(down)} unreachable",
            "param": None,
        }
    return json_response(body, 503 if down else 200)


async def openapi(request: Request) -> Response:
    return json_response(openapi_document())


ROUTES = [
    Route("/api/v1/me", users.me, methods=["GET"]),
    Route("/api/v1/tips", money.create_tip, methods=["POST"]),
    Route("/api/v1/tips", money.tips, methods=["GET"]),
    Route("/api/v1/wallet", money.wallet, methods=["GET"]),
    Route("/api/v1/transactions", money.transactions, methods=["GET"]),
    Route("/api/v1/payments", payments.create, methods=["POST"]),
    Route("/api/v1/payments/{payment_id}", payments.show, methods=["GET"]),
    Route("/api/v1/content", content.create, methods=["POST"]),
    Route("/api/v1/content/{content_id}", content.show, methods=["GET"]),
    Route("/api/v1/content/{content_id}/purchase", content.buy, methods=["POST"]),
    Route("/api/v1/payouts", payouts.create, methods=["POST"]),
    Route("/api/v1/payouts/{payout_id}", payouts.show, methods=["GET"]),
    Route("/api/v1/refunds", admin.refund, methods=["POST"]),
    Route("/api/v1/admin/platform-fee", admin.platform_fee, methods=["GET", "PUT"]),
    Route("/api/v1/admin/jobs/failed", admin.failed_jobs, methods=["GET"]),
    Route("/api/v1/admin/jobs/failed/{failed_id}/retry", admin.retry_failed_job, methods=["POST"]),
    Route("/api/v1/admin/analytics/revenue", analytics.revenue_report, methods=["GET"]),
    Route("/api/v1/admin/analytics/top-creators", analytics.top_creators_report, methods=["GET"]),
    Route("/api/v1/admin/analytics/payments", analytics.payments_report, methods=["GET"]),
    Route("/api/v1/overlay-keys", live.index, methods=["GET"]),
    Route("/api/v1/overlay-keys", live.create, methods=["POST"]),
    Route("/api/v1/overlay-keys/{key_id}", live.revoke, methods=["DELETE"]),
    Route("/api/v1/overlay-keys/{key_id}/rotate", live.rotate, methods=["POST"]),
    Route("/api/v1/presence", live.presence, methods=["GET"]),
    Route("/api/v1/notifications", platform.publish, methods=["POST"]),
    Route("/api/v1/events", platform.events, methods=["GET"]),
    Route("/api/v1/users/{user_id}", platform.get_user, methods=["GET"]),
    Route("/api/v1/users/{user_id}", platform.put_user, methods=["PUT"]),
    Route("/api/v1/users/{user_id}/disconnect", platform.disconnect, methods=["POST"]),
    Route("/api/v1/api-keys", platform.list_api_keys, methods=["GET"]),
    Route("/api/v1/api-keys", platform.create_api_key, methods=["POST"]),
    Route("/api/v1/api-keys/{key_id}/rotate", platform.rotate_api_key, methods=["POST"]),
    Route("/api/v1/api-keys/{key_id}", platform.revoke_api_key, methods=["DELETE"]),
    Route("/api/v1/webhook-endpoints", outbound.create, methods=["POST"]),
    Route("/api/v1/webhook-endpoints", outbound.index, methods=["GET"]),
    Route("/api/v1/webhook-endpoints/{endpoint_id}", outbound.show, methods=["GET"]),
    Route("/api/v1/webhook-endpoints/{endpoint_id}", outbound.change, methods=["PATCH"]),
    Route("/api/v1/webhook-endpoints/{endpoint_id}", outbound.delete, methods=["DELETE"]),
    Route(
        "/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
        outbound.rotate_secret,
        methods=["POST"],
    ),
    Route(
        "/api/v1/webhook-endpoints/{endpoint_id}/deliveries", outbound.deliveries, methods=["GET"]
    ),
    Route(
        "/api/v1/webhook-endpoints/{endpoint_id}/redeliver",
        outbound.redeliver_since,
        methods=["POST"],
    ),
    Route("/api/v1/webhook-deliveries/{delivery_id}", outbound.delivery, methods=["GET"]),
    Route(
        "/api/v1/webhook-deliveries/{delivery_id}/redeliver", outbound.redeliver, methods=["POST"]
    ),
    Route("/api/v1/creators/{creator_id}", users.creator, methods=["GET"]),
    Route("/api/v1/goal", users.put_goal, methods=["PUT"]),
    Route("/api/v1/goal", users.delete_goal, methods=["DELETE"]),
    Route("/api/v1/live", users.put_live, methods=["PUT"]),
    Route("/api/v1/creators/{creator_id}/content", content.by_creator, methods=["GET"]),
    Route("/api/v1/creators/{creator_id}/presence", live.creator_presence, methods=["GET"]),
    Route("/api/v1/push/config", push.config, methods=["GET"]),
    Route("/api/v1/push/subscriptions", push.subscribe, methods=["POST"]),
    Route("/api/v1/push/subscriptions", push.unsubscribe, methods=["DELETE"]),
    Route("/webhooks/{provider}", webhooks.receive, methods=["POST"]),
    Route("/checkout/return", payments.checkout_return, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
