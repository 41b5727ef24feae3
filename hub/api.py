"""The route table of the HTTP API, and health."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub import responses
from hub.guard import guard, key, user, user_or_key
from hub.http import hub_of, json_response
from hub.metrics import metrics
from hub.openapi import openapi_document, operation
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
from ledger.accounts import Role
from ledger.apps import Scope


@operation("Alive", {"200": "ok"}, returns=responses.Health)
async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


@operation(
    "Ready: PostgreSQL and Redis reachable",
    {"200": "ready", "503": "names what is down"},
    returns=responses.Readiness,
)
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
    Route("/api/v1/me", guard(users.me, user()), methods=["GET"]),
    Route("/api/v1/tips", guard(money.create_tip, user()), methods=["POST"]),
    Route("/api/v1/tips", guard(money.tips, user()), methods=["GET"]),
    Route("/api/v1/wallet", guard(money.wallet, user()), methods=["GET"]),
    Route("/api/v1/transactions", guard(money.transactions, user()), methods=["GET"]),
    Route("/api/v1/payments", guard(payments.create, user()), methods=["POST"]),
    Route("/api/v1/payments/{payment_id}", guard(payments.show, user()), methods=["GET"]),
    Route("/api/v1/content", guard(content.create, user(Role.CREATOR)), methods=["POST"]),
    Route("/api/v1/content/{content_id}", guard(content.show, user()), methods=["GET"]),
    Route("/api/v1/content/{content_id}/purchase", guard(content.buy, user()), methods=["POST"]),
    Route("/api/v1/payouts", guard(payouts.create, user(Role.CREATOR)), methods=["POST"]),
    Route("/api/v1/payouts/{payout_id}", guard(payouts.show, user()), methods=["GET"]),
    Route("/api/v1/refunds", guard(admin.refund, user(Role.ADMIN)), methods=["POST"]),
    Route(
        "/api/v1/admin/platform-fee", guard(admin.platform_fee, user(Role.ADMIN)), methods=["GET"]
    ),
    Route(
        "/api/v1/admin/platform-fee",
        guard(admin.set_platform_fee, user(Role.ADMIN)),
        methods=["PUT"],
    ),
    Route("/api/v1/admin/jobs/failed", guard(admin.failed_jobs, user(Role.ADMIN)), methods=["GET"]),
    Route(
        "/api/v1/admin/jobs/failed/{failed_id}/retry",
        guard(admin.retry_failed_job, user(Role.ADMIN)),
        methods=["POST"],
    ),
    Route(
        "/api/v1/admin/analytics/revenue",
        guard(analytics.revenue_report, user(Role.ADMIN)),
        methods=["GET"],
    ),
    Route(
        "/api/v1/admin/analytics/top-creators",
        guard(analytics.top_creators_report, user(Role.ADMIN)),
        methods=["GET"],
    ),
    Route(
        "/api/v1/admin/analytics/payments",
        guard(analytics.payments_report, user(Role.ADMIN)),
        methods=["GET"],
    ),
    Route("/api/v1/overlay-keys", guard(live.index, user(Role.CREATOR)), methods=["GET"]),
    Route("/api/v1/overlay-keys", guard(live.create, user(Role.CREATOR)), methods=["POST"]),
    Route(
        "/api/v1/overlay-keys/{key_id}", guard(live.revoke, user(Role.CREATOR)), methods=["DELETE"]
    ),
    Route(
        "/api/v1/overlay-keys/{key_id}/rotate",
        guard(live.rotate, user(Role.CREATOR)),
        methods=["POST"],
    ),
    Route(
        "/api/v1/presence",
        guard(live.presence, user_or_key((Role.ADMIN,), Scope.READ)),
        methods=["GET"],
    ),
    Route("/api/v1/notifications", guard(platform.publish, key(Scope.PUBLISH)), methods=["POST"]),
    Route("/api/v1/events", guard(platform.events, key(Scope.READ)), methods=["GET"]),
    Route("/api/v1/users/{user_id}", guard(platform.get_user, key(Scope.READ)), methods=["GET"]),
    Route("/api/v1/users/{user_id}", guard(platform.put_user, key(Scope.ADMIN)), methods=["PUT"]),
    Route(
        "/api/v1/users/{user_id}/disconnect",
        guard(platform.disconnect, key(Scope.ADMIN)),
        methods=["POST"],
    ),
    Route("/api/v1/users/{user_id}/ban", guard(platform.ban, key(Scope.ADMIN)), methods=["POST"]),
    Route(
        "/api/v1/users/{user_id}/ban", guard(platform.unban, key(Scope.ADMIN)), methods=["DELETE"]
    ),
    Route("/api/v1/app", guard(platform.show_app, key(Scope.READ)), methods=["GET"]),
    Route("/api/v1/api-keys", guard(platform.list_api_keys, key(Scope.ADMIN)), methods=["GET"]),
    Route("/api/v1/api-keys", guard(platform.create_api_key, key(Scope.ADMIN)), methods=["POST"]),
    Route(
        "/api/v1/api-keys/{key_id}/rotate",
        guard(platform.rotate_api_key, key(Scope.ADMIN)),
        methods=["POST"],
    ),
    Route(
        "/api/v1/api-keys/{key_id}",
        guard(platform.revoke_api_key, key(Scope.ADMIN)),
        methods=["DELETE"],
    ),
    Route("/api/v1/webhook-endpoints", guard(outbound.create, key(Scope.ADMIN)), methods=["POST"]),
    Route("/api/v1/webhook-endpoints", guard(outbound.index, key(Scope.READ)), methods=["GET"]),
    Route(
        "/api/v1/webhook-endpoints/{endpoint_id}",
        guard(outbound.show, key(Scope.READ)),
        methods=["GET"],
    ),
    Route(
        "/api/v1/webhook-endpoints/{endpoint_id}",
        guard(outbound.change, key(Scope.ADMIN)),
        methods=["PATCH"],
    ),
    Route(
        "/api/v1/webhook-endpoints/{endpoint_id}",
        guard(outbound.delete, key(Scope.ADMIN)),
        methods=["DELETE"],
    ),
    Route(
        "/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
        guard(outbound.rotate_secret, key(Scope.ADMIN)),
        methods=["POST"],
    ),
    Route(
        "/api/v1/webhook-endpoints/{endpoint_id}/deliveries",
        guard(outbound.deliveries, key(Scope.READ)),
        methods=["GET"],
    ),
    Route(
        "/api/v1/webhook-endpoints/{endpoint_id}/redeliver",
        guard(outbound.redeliver_since, key(Scope.ADMIN)),
        methods=["POST"],
    ),
    Route(
        "/api/v1/webhook-deliveries/{delivery_id}",
        guard(outbound.delivery, key(Scope.READ)),
        methods=["GET"],
    ),
    Route(
        "/api/v1/webhook-deliveries/{delivery_id}/redeliver",
        guard(outbound.redeliver, key(Scope.ADMIN)),
        methods=["POST"],
    ),
    Route("/api/v1/creators/{creator_id}", guard(users.creator, user()), methods=["GET"]),
    Route("/api/v1/goal", guard(users.put_goal, user(Role.CREATOR)), methods=["PUT"]),
    Route("/api/v1/goal", guard(users.delete_goal, user(Role.CREATOR)), methods=["DELETE"]),
    Route("/api/v1/live", guard(users.put_live, user(Role.CREATOR)), methods=["PUT"]),
    Route(
        "/api/v1/creators/{creator_id}/content", guard(content.by_creator, user()), methods=["GET"]
    ),
    Route(
        "/api/v1/creators/{creator_id}/presence",
        guard(live.creator_presence, user()),
        methods=["GET"],
    ),
    Route("/api/v1/push/config", push.config, methods=["GET"]),
    Route("/api/v1/push/subscriptions", guard(push.subscribe, user()), methods=["POST"]),
    Route("/api/v1/push/subscriptions", guard(push.unsubscribe, user()), methods=["DELETE"]),
    Route("/webhooks/{provider}", webhooks.receive, methods=["POST"]),
    Route("/apps/{app_id}/webhooks/{provider}", webhooks.receive, methods=["POST"]),
    Route("/checkout/return", payments.checkout_return, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
]
