"""The OpenAPI 3.1 document of the HTTP API, served at /openapi.json.

Request bodies come from the same pydantic models the routes validate with, so the document
cannot drift from what the server accepts.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pydantic import BaseModel

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "examples": ["insufficient_funds"]},
                "message": {"type": "string"},
                "param": {"type": ["string", "null"]},
            },
        }
    },
}
MONEY = {
    "type": "object",
    "properties": {"amount": {"type": "integer"}, "currency": {"type": "string"}},
}
IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": True,
    "schema": {"type": "string", "maxLength": 255},
    "description": "Scoped to the caller; the same key and request replays the saved response "
    "(Idempotent-Replayed: true); another request with it is 422; still in flight is 409.",
}
AUTH = {"401": "Missing, malformed, wrongly signed or expired token"}
BODY = {"400": "The body is not a JSON object", "422": "Invalid input; `param` names the field"}
KEYED = {
    "400": "No Idempotency-Key (or over 255 characters)",
    "409": "idempotency_in_flight: the first request with this key is still running",
    "422": "idempotency_key_reused with another request, or invalid input (`param`)",
}
LIMITED = {"429": "rate_limited (Retry-After and RateLimit-* headers)"}


def _op(
    summary: str,
    responses: dict[str, str],
    *,
    body: type[BaseModel] | None = None,
    idempotent: bool = False,
    auth: bool = True,
    limited: bool = False,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {}}
    common = {
        **(AUTH if auth else {}),
        **(BODY if body is not None else {}),
        **(KEYED if idempotent else {}),
        **(LIMITED if limited else {}),
    }
    for code, text in sorted({**common, **responses}.items()):
        response: dict[str, Any] = {"description": text}
        if code.startswith(("4", "5")):
            response["content"] = {
                "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
            }
        op["responses"][code] = response
    parameters = list(params or [])
    if idempotent:
        parameters.append(IDEMPOTENCY)
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body_schema(body)}},
        }
    if not auth:
        op["security"] = []
    return op


ID = {"type": "integer", "format": "int64", "minimum": 1, "maximum": 2**63 - 1}

# Models nested in request bodies, by name: pydantic's $defs, moved to components.schemas (a
# `#/$defs/...` reference inside a path's schema resolves against the document, not the body).
_NESTED: dict[str, Any] = {}


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    _NESTED.update(schema.pop("$defs", {}))
    return schema


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID}


def _query(name: str, schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": text}


PAGE = [
    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Page size (default 20)"),
    _query("before", ID, "The next_cursor of the previous page"),
]
CREATOR_ID = {"name": "creator_id", "in": "path", "required": True, "schema": {"type": "string"}}


@cache
def openapi_document() -> dict[str, Any]:
    from hub.routes.admin import FeeRequest, RefundRequest
    from hub.routes.content import ContentRequest, PurchaseRequest
    from hub.routes.live import OverlayKeyRequest
    from hub.routes.money import TipRequest
    from hub.routes.outbound import (
        EndpointChange,
        EndpointRequest,
        RedeliverRequest,
        RotateRequest,
    )
    from hub.routes.payments import PaymentRequest
    from hub.routes.payouts import PayoutRequest
    from hub.routes.platform import KeyRequest, KeyRotation, NotificationRequest, UserRequest
    from hub.routes.push import SubscriptionRequest, UnsubscribeRequest
    from hub.routes.users import GoalRequest, LiveRequest

    user_path = {"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}

    paths: dict[str, Any] = {
        "/api/v1/tips": {
            "post": _op(
                "Tip a creator from the wallet (201) or by card through a provider (202)",
                {
                    "201": "The tip's transfer",
                    "202": "A pending card payment with its checkout_url",
                    "402": "insufficient_funds: nothing was posted",
                    "404": "creator_not_found",
                    "502": "provider_error (card): nothing was charged",
                },
                body=TipRequest,
                idempotent=True,
                limited=True,
            ),
            "get": _op(
                "The caller's tips, newest first (keyset pagination): received as the creator, "
                "or sent as the fan",
                {
                    "200": "A page: data [{id, fan_id, fan_name, creator_id, creator_name, "
                    "amount, fee, net, message, payment_id, created_at}], next_cursor, has_more",
                    "422": "A bad query parameter",
                },
                params=[
                    _query(
                        "direction",
                        {"enum": ["received", "sent"]},
                        "Default received for creators, sent for everyone else",
                    ),
                    *PAGE,
                ],
            ),
        },
        "/api/v1/me": {
            "get": _op("The caller: {id, role, name}", {"200": "The caller"}),
        },
        "/api/v1/wallet": {
            "get": _op(
                "The caller's balances: posted, held and available per account",
                {"200": "Balances", "422": "as_of is not an ISO 8601 time with a zone"},
                params=[
                    _query(
                        "as_of",
                        {"type": "string", "format": "date-time"},
                        "Posted balances as of this time",
                    )
                ],
            )
        },
        "/api/v1/transactions": {
            "get": _op(
                "The caller's entries, newest first (keyset pagination)",
                {"200": "A page: data, next_cursor, has_more", "422": "A bad query parameter"},
                params=[
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Page size"),
                    _query("before", ID, "The next_cursor of the previous page"),
                    _query("kind", {"type": "string"}, "Transfer kind: tip, topup, purchase, ..."),
                    _query("account", {"enum": ["wallet", "earnings"]}, "Which account"),
                    _query("currency", {"type": "string"}, "ISO 4217 code"),
                ],
            )
        },
        "/api/v1/payments": {
            "post": _op(
                "Top up the wallet through a provider: a pending payment and its checkout_url",
                {"201": "The pending payment", "502": "provider_error"},
                body=PaymentRequest,
                idempotent=True,
                limited=True,
            )
        },
        "/api/v1/payments/{payment_id}": {
            "get": _op(
                "One of the caller's payments",
                {"200": "The payment", "404": "payment_not_found"},
                params=[_path("payment_id")],
            )
        },
        "/api/v1/content": {
            "post": _op(
                "Register pay-per-view content with a price (creators)",
                {"201": "The content", "403": "Not a creator"},
                body=ContentRequest,
            )
        },
        "/api/v1/content/{content_id}": {
            "get": _op(
                "Content and whether the caller has access; its body only with access",
                {
                    "200": "The content with has_access, and body when has_access is true",
                    "404": "content_not_found",
                },
                params=[_path("content_id")],
            )
        },
        "/api/v1/content/{content_id}/purchase": {
            "post": _op(
                "Buy access at the server's price, from the wallet (201) or by card (202)",
                {
                    "201": "The purchase's transfer",
                    "202": "A pending card payment with its checkout_url",
                    "402": "insufficient_funds",
                    "404": "content_not_found",
                    "409": "already_purchased (never a second charge), or the key is in flight",
                    "502": "provider_error (card): nothing was charged",
                },
                body=PurchaseRequest,
                idempotent=True,
                limited=True,
                params=[_path("content_id")],
            )
        },
        "/api/v1/payouts": {
            "post": _op(
                "Pay out earnings (creators): held now, sent by a job, settled by webhook",
                {
                    "201": "The pending payout",
                    "402": "More than the available earnings",
                    "403": "Not a creator",
                },
                body=PayoutRequest,
                idempotent=True,
                limited=True,
            )
        },
        "/api/v1/payouts/{payout_id}": {
            "get": _op(
                "One of the caller's payouts",
                {"200": "The payout", "404": "payout_not_found"},
                params=[_path("payout_id")],
            )
        },
        "/api/v1/refunds": {
            "post": _op(
                "Refund a payment, fully or in part (admins)",
                {
                    "201": "The refund",
                    "402": "A top-up whose money the wallet has already spent",
                    "403": "Not an admin",
                    "404": "payment_not_found",
                    "409": "refund_not_allowed (not succeeded, nothing left), or the key in flight",
                    "422": "refund_exceeds_payment",
                },
                body=RefundRequest,
                idempotent=True,
            )
        },
        "/api/v1/admin/platform-fee": {
            "get": _op(
                "The platform fee in force, in basis points (admins)",
                {"200": "{bps}", "403": "Not an admin"},
            ),
            "put": _op(
                "Change the platform fee (admins); every node applies it at once",
                {"200": "{bps}", "403": "Not an admin"},
                body=FeeRequest,
            ),
        },
        "/api/v1/admin/jobs/failed": {
            "get": _op(
                "Jobs that failed for good, newest first (admins)",
                {
                    "200": "{data: [{id, job, job_id, args, error, tries, failed_at, "
                    "retried_at, retried_by, retry_job_id}]}",
                    "403": "Not an admin",
                },
            )
        },
        "/api/v1/admin/jobs/failed/{failed_id}/retry": {
            "post": _op(
                "Enqueue a failed job again with its arguments; each entry once (admins)",
                {
                    "202": "The entry, with retried_at, retried_by and retry_job_id",
                    "403": "Not an admin",
                    "404": "failed_job_not_found",
                    "409": "failed_job_already_retried, or failed_job_not_retriable (a job "
                    "this release does not run)",
                    "503": "service_unavailable: Redis did not take the job; nothing changed",
                },
                params=[_path("failed_id")],
            )
        },
        "/api/v1/admin/analytics/revenue": {
            "get": _op(
                "Gross volume and platform fees per day, week or month (admins; from rollups)",
                {
                    "200": "{period, from, to, data: [{period_start, currency, gross, ...}]}",
                    "403": "Not an admin",
                    "422": "A bad period, date or currency",
                },
                params=[
                    _query("period", {"enum": ["day", "week", "month"]}, "Default day"),
                    _query("from", {"type": "string", "format": "date"}, "Default 30 days ago"),
                    _query("to", {"type": "string", "format": "date"}, "Default today (UTC)"),
                    _query("currency", {"type": "string"}, "All when absent"),
                ],
            )
        },
        "/api/v1/admin/analytics/top-creators": {
            "get": _op(
                "Top creators by earnings over a range (admins; from rollups)",
                {
                    "200": "{currency, from, to, data: [{creator_id, earnings}]}",
                    "403": "Not an admin",
                    "422": "A bad date, currency or limit",
                },
            )
        },
        "/api/v1/admin/analytics/payments": {
            "get": _op(
                "Payment success rate per provider over a range (admins)",
                {
                    "200": "{from, to, data: [{provider, started, succeeded, failed, ...}]}",
                    "403": "Not an admin",
                    "422": "A bad date",
                },
            )
        },
        "/api/v1/overlay-keys": {
            "get": _op("The creator's overlay keys (never the keys themselves)", {"200": "Keys"}),
            "post": _op(
                "A new overlay key for the public tip-alert page (creators); shown once",
                {"201": "The key record with `key`", "403": "Not a creator"},
                body=OverlayKeyRequest,
            ),
        },
        "/api/v1/overlay-keys/{key_id}": {
            "delete": _op(
                "Revoke: refused from now on, live overlays cut on every node",
                {"200": "The revoked key", "404": "overlay_key_not_found"},
                params=[_path("key_id")],
            )
        },
        "/api/v1/overlay-keys/{key_id}/rotate": {
            "post": _op(
                "A new key in place of this one (revoked in the same transaction)",
                {"201": "The new key record with `key`", "404": "overlay_key_not_found"},
                params=[_path("key_id")],
            )
        },
        "/api/v1/presence": {
            "get": _op(
                "Users connected now across the cluster; ?user_id= adds one user's connections. "
                "With an API key (read): users: [{id, connections}] for each user_id (1-100, "
                "repeated), counting only the app's users",
                {
                    "200": "{connected_users, user?: {id, connections}} (token) or "
                    "{users: [{id, connections}]} (API key)",
                    "403": "Not an admin, or the key lacks `read`",
                },
                params=[_query("user_id", {"type": "string"}, "A user to count (repeatable)")],
            )
        },
        "/api/v1/notifications": {
            "post": _op(
                "Publish a platform event into users' logs (user_id or user_ids, up to "
                "1000; missing users of the app are created as fans) or a creator's public "
                "channel (channel): delivered live, recovered by cursor, readable by "
                "GET /api/v1/events; the type is stored as app.<type> (public.app.<type> "
                "on a channel)",
                {
                    "201": "{type, channel, events: [{id, user_id, seq}]}",
                    "404": "creator_not_found (channel)",
                    "409": "user_id_taken: a user of another app has this id",
                },
                body=NotificationRequest,
                idempotent=True,
            )
        },
        "/api/v1/events": {
            "get": _op(
                "A user's event log in order, after the event `after` (the cursor the "
                "sockets keep; 0: from the oldest kept)",
                {
                    "200": "{user_id, data: [{id, seq, type, occurred_at, data}], has_more, "
                    "next_after}",
                    "404": "user_not_found (in this app)",
                    "410": "cursor_expired: `after` is not in the log (or no longer kept)",
                },
                params=[
                    {**_query("user_id", {"type": "string"}, "The user"), "required": True},
                    _query("after", {"type": "integer", "minimum": 0}, "An event id, or 0"),
                    _query(
                        "limit",
                        {"type": "integer", "minimum": 1, "maximum": 1000},
                        "Default 100",
                    ),
                ],
            )
        },
        "/api/v1/users/{user_id}": {
            "get": _op(
                "One of the app's users",
                {"200": "{id, role, name, email, created_at}", "404": "user_not_found"},
                params=[user_path],
            ),
            "put": _op(
                "Create the app's user (and their accounts) ahead of their first request, or "
                "update their name and email; a fan may become a creator, not the reverse",
                {
                    "200": "Updated: {id, role, name, email, created_at}",
                    "201": "Created",
                    "409": "user_id_taken (another app's), or role_change_refused",
                },
                body=UserRequest,
                params=[user_path],
            ),
        },
        "/api/v1/api-keys": {
            "get": _op(
                "The app's API keys: prefix, scopes, label, created, expires, revoked, last "
                "used; never a secret",
                {"200": "{data: [key]}"},
            ),
            "post": _op(
                "A new key of the app; `secret` is in this answer only (kept as a hash)",
                {"201": "The key and its secret"},
                body=KeyRequest,
            ),
        },
        "/api/v1/api-keys/{key_id}/rotate": {
            "post": _op(
                "A successor with the same scopes and label; the old key works "
                "overlap_seconds more (default 86400; 0: it ends now)",
                {
                    "201": "The new key and its secret",
                    "404": "api_key_not_found",
                    "409": "api_key_not_rotatable: revoked, expired or rotated already",
                },
                body=KeyRotation,
                params=[_path("key_id")],
            )
        },
        "/api/v1/api-keys/{key_id}": {
            "delete": _op(
                "Revoke the key: refused on every node within 5 seconds",
                {"200": "The key, with revoked_at", "404": "api_key_not_found"},
                params=[_path("key_id")],
            )
        },
        "/api/v1/webhook-endpoints": {
            "post": _op(
                "A webhook endpoint of the app: Hub's events of its users (all, or "
                "`event_types`) POSTed to `url`, signed the Standard Webhooks way with "
                "`secret` (shown here and on rotation)",
                {
                    "201": "The endpoint and its secret",
                    "409": "too_many_webhook_endpoints (20 an app)",
                },
                body=EndpointRequest,
            ),
            "get": _op("The app's webhook endpoints", {"200": "{data: [endpoint]}"}),
        },
        "/api/v1/webhook-endpoints/{endpoint_id}": {
            "get": _op(
                "One endpoint (enabled, failing_since, disabled_reason)",
                {"200": "The endpoint", "404": "webhook_endpoint_not_found"},
                params=[_path("endpoint_id")],
            ),
            "patch": _op(
                "Change url, event_types, description; enabled: false turns it off, true "
                "back on (and clears its failure record)",
                {"200": "The endpoint", "404": "webhook_endpoint_not_found"},
                body=EndpointChange,
                params=[_path("endpoint_id")],
            ),
            "delete": _op(
                "Delete the endpoint and its delivery log",
                {"204": "Deleted", "404": "webhook_endpoint_not_found"},
                params=[_path("endpoint_id")],
            ),
        },
        "/api/v1/webhook-endpoints/{endpoint_id}/rotate-secret": {
            "post": _op(
                "A new secret; deliveries carry a signature with each secret for "
                "overlap_seconds (default 86400)",
                {"200": "The endpoint and its new secret", "404": "webhook_endpoint_not_found"},
                body=RotateRequest,
                params=[_path("endpoint_id")],
            )
        },
        "/api/v1/webhook-endpoints/{endpoint_id}/deliveries": {
            "get": _op(
                "The endpoint's delivery log, newest first; ?status=pending|delivered|failed",
                {
                    "200": "{data: [delivery with last_attempt], next_cursor, has_more}",
                    "404": "webhook_endpoint_not_found",
                },
                params=[
                    _path("endpoint_id"),
                    *PAGE,
                    _query(
                        "status",
                        {"type": "string", "enum": ["pending", "delivered", "failed"]},
                        "Only these",
                    ),
                ],
            )
        },
        "/api/v1/webhook-endpoints/{endpoint_id}/redeliver": {
            "post": _op(
                "Send every delivery made since `since` again (each user's in order)",
                {"202": "{redelivering: n}", "404": "webhook_endpoint_not_found"},
                body=RedeliverRequest,
                params=[_path("endpoint_id")],
            )
        },
        "/api/v1/webhook-deliveries/{delivery_id}": {
            "get": _op(
                "One delivery: its body and every attempt (status code, first 1 KiB of "
                "the response, duration, error)",
                {"200": "The delivery", "404": "webhook_delivery_not_found"},
                params=[_path("delivery_id")],
            )
        },
        "/api/v1/webhook-deliveries/{delivery_id}/redeliver": {
            "post": _op(
                "Send the delivery again now, with a fresh round of retries",
                {"202": "The delivery, pending", "404": "webhook_delivery_not_found"},
                params=[_path("delivery_id")],
            )
        },
        "/api/v1/users/{user_id}/disconnect": {
            "post": _op(
                "Close the user's sockets on every node (hub.error `disconnected` first)",
                {
                    "200": "{user_id, connections}: the sockets open before",
                    "404": "user_not_found",
                },
                params=[user_path],
            )
        },
        "/api/v1/goal": {
            "put": _op(
                "The creator's tipping goal, counted from now (replaces any); its progress is "
                "the tips received in its currency since; goes out as public.goal",
                {
                    "200": "{goal: {title, target, currency, raised, started_at}}",
                    "403": "Not a creator",
                },
                body=GoalRequest,
            ),
            "delete": _op(
                "End the goal (public.goal {goal: null})",
                {"204": "Ended (or there was none)", "403": "Not a creator"},
            ),
        },
        "/api/v1/live": {
            "put": _op(
                "The creator is live now, with a title, or not any more; goes out as "
                "public.live when it changes",
                {"200": "{live: {since, title} | null}", "403": "Not a creator"},
                body=LiveRequest,
            )
        },
        "/api/v1/creators/{creator_id}": {
            "get": _op(
                "A creator's public profile: name, goal with what it raised, live state",
                {"200": "{id, name, goal, live}", "404": "creator_not_found"},
                params=[CREATOR_ID],
            )
        },
        "/api/v1/creators/{creator_id}/content": {
            "get": _op(
                "A creator's content, newest first (keyset pagination), as the caller sees it",
                {
                    "200": "A page: data (each with has_access, and body when it is true), "
                    "next_cursor, has_more",
                    "404": "creator_not_found",
                    "422": "A bad query parameter",
                },
                params=[CREATOR_ID, *PAGE],
            )
        },
        "/api/v1/creators/{creator_id}/presence": {
            "get": _op(
                "A creator's live overlays and viewers (that creator or an admin)",
                {"200": "{creator_id, overlays, viewers}", "403": "Neither"},
                params=[
                    {
                        "name": "creator_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
            )
        },
        "/api/v1/push/config": {
            "get": _op(
                "Whether Web Push is on, and the hub's VAPID public key (applicationServerKey)",
                {"200": "{enabled, public_key}"},
                auth=False,
            )
        },
        "/api/v1/push/subscriptions": {
            "post": _op(
                "Save the browser's push subscription (PushSubscription.toJSON()) for the "
                "caller; creators get a push per tip while no page of theirs is open",
                {
                    "201": "{id, endpoint, created_at}; the caller's oldest beyond 10 are dropped",
                    "409": "push_disabled: no VAPID key on this hub",
                    "422": "An endpoint that is not an allowed push service, or bad keys",
                },
                body=SubscriptionRequest,
            ),
            "delete": _op(
                "Delete one of the caller's push subscriptions by its endpoint",
                {"204": "Deleted", "404": "push_subscription_not_found"},
                body=UnsubscribeRequest,
            ),
        },
        "/webhooks/{provider}": {
            "post": _op(
                "Provider webhooks: paystack, stripe, or a Standard Webhooks sender",
                {
                    "200": "Recorded (applied, duplicate, ignored, mismatch or unknown)",
                    "400": "Signed, but not a valid event: stored as rejected",
                    "401": "Bad signature: nothing stored",
                    "404": "No sender by that name",
                },
                auth=False,
                limited=True,
                params=[
                    {
                        "name": "provider",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
            )
        },
        "/healthz": {"get": _op("Alive", {"200": "ok"}, auth=False)},
        "/metrics": {
            "get": {
                **_op(
                    "Prometheus metrics (text format); with HUB_METRICS_TOKEN set, only for "
                    "`Authorization: Bearer <that token>`",
                    {
                        "200": "metrics",
                        "401": "HUB_METRICS_TOKEN is set and the request does not carry it",
                    },
                ),
                # Open when no token is set; the bearer is then the metrics token, not a JWT.
                "security": [{}, {"metricsToken": []}],
            }
        },
        "/readyz": {
            "get": _op(
                "Ready: PostgreSQL and Redis reachable",
                {"200": "ready", "503": "names what is down"},
                auth=False,
            )
        },
    }
    _secure_from_route_table(paths)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hub",
            "version": "1",
            "description": "Real-time payments and notifications for creator platforms. Amounts "
            "are integers in minor units with an ISO 4217 currency.",
        },
        "components": {
            "schemas": {"Error": ERROR, "Money": MONEY, **_NESTED},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An app's API key (hk_...): `hub apps keys APP create`",
                },
                "metricsToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "HUB_METRICS_TOKEN, when the node has one",
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _secure_from_route_table(paths: dict[str, Any]) -> None:
    """Each operation's security, and its 401 and 403, from what the route table declares
    (hub.guard): the document cannot say a route takes a token when it takes a key."""
    from hub.api import ROUTES
    from hub.guard import access_of

    for route in ROUTES:
        access = access_of(getattr(route, "endpoint", None))
        if access is None:
            continue
        for method in sorted(getattr(route, "methods", None) or ()):
            op = paths.get(route.path, {}).get(method.lower())
            if op is None:
                continue  # tests/hub/test_reads.py names every route missing from the document
            schemes: list[dict[str, list[str]]] = []
            if access.users:
                schemes.append({"bearer": []})
            if access.scope is not None:
                schemes.append({"apiKey": []})
            op["security"] = schemes
            if access.scope is not None and not access.users:
                op["description"] = (
                    f"API key with the `{access.scope.value}` scope (Authorization: Bearer hk_...)."
                )
            error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
            op["responses"].setdefault(
                "401", {"description": "No credential, or one that is not valid", "content": error}
            )
            if access.roles or access.scope is not None:
                wanted = []
                if access.roles:
                    wanted.append(f"the {' or '.join(r.value for r in access.roles)} role")
                if access.scope is not None:
                    wanted.append(f"an API key with `{access.scope.value}`")
                needs = " or ".join(wanted)
                op["responses"].setdefault(
                    "403", {"description": f"forbidden: this needs {needs}", "content": error}
                )
