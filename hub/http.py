"""Helpers shared by the routes: JSON bodies, validation into 4xx, roles, rate limits."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hub.auth import Principal
from hub.errors import ApiError
from hub.idempotency import Command, Outcome, run_once
from hub.metrics import RATE_LIMITED
from hub.ratelimit import RateLimited
from hub.state import Hub
from ledger.accounts import Role
from ledger.idempotency import request_fingerprint
from ledger.statements import MAX_PAGE

M = TypeVar("M", bound=BaseModel)
MAX_SAFE_INTEGER = 2**53 - 1  # the largest amount a JavaScript client reads exactly


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    raw = await request.body()
    if optional and not raw.strip():
        return {}
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body must be a JSON object") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return payload


def parse(model: type[M], payload: dict[str, Any]) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors()[0]
        param = ".".join(str(part) for part in error["loc"]) or None
        raise ApiError(422, "invalid_request", f"{param}: {error['msg']}", param) from None


def check_currency(hub: Hub, currency: str) -> None:
    if currency not in hub.settings.currencies:
        raise ApiError(
            422,
            "invalid_request",
            f"currency: must be one of {', '.join(hub.settings.currencies)}",
            "currency",
        )


def require_role(principal: Principal, *roles: Role) -> None:
    if principal.role not in roles:
        names = " or ".join(role.value for role in roles)
        raise ApiError(403, "forbidden", f"this needs the {names} role")


def query_int(request: Request, name: str, default: int | None = None) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(422, "invalid_request", f"{name}: must be an integer", name) from None


def page_query(request: Request, default_limit: int = 20) -> tuple[int, int | None]:
    """`?limit=` (1 to MAX_PAGE) and `?before=` (a previous page's next_cursor) of a keyset page."""
    limit = query_int(request, "limit", default_limit)
    assert limit is not None
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(422, "invalid_request", f"limit: must be 1 to {MAX_PAGE}", "limit")
    return limit, query_int(request, "before")


def page_response(page: list[dict[str, Any]], cursor: int | None) -> Response:
    """A keyset page: `data`, `next_cursor` (pass it as `before`), `has_more`."""
    return json_response({"data": page, "next_cursor": cursor, "has_more": cursor is not None})


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def rate_limit(
    hub: Hub, request: Request, scope: str, principal: Principal | None
) -> dict[str, str]:
    """Spend one unit of `scope`'s limits for the caller (and their IP where the scope says so);
    raises RateLimited (429). Returns the RateLimit-* headers for the response."""
    settings = hub.settings
    limits = {
        "payments": settings.rate_limit_payments,
        "transfers": settings.rate_limit_transfers,
        "webhooks": settings.rate_limit_webhooks,
    }[scope]
    keys = []
    if principal is not None:
        keys.append(f"user:{principal.user_id}")
    if principal is None or scope == "payments":
        keys.append(f"ip:{client_ip(request)}")
    try:
        return await hub.limiter.hit(scope, keys, limits)
    except RateLimited:
        RATE_LIMITED.labels(scope).inc()
        raise


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(body, status_code=status, headers=headers or None)


async def respond_once(
    hub: Hub,
    request: Request,
    principal: Principal,
    key: str,
    payload: dict[str, Any],
    command: Command,
    headers: dict[str, str] | None = None,
) -> Response:
    """Run a money-moving command once per (caller, Idempotency-Key); answer with its response,
    or the one saved under the key."""
    outcome = await run_once(
        hub.sessions,
        caller_id=principal.user_id,
        key=key,
        fingerprint=request_fingerprint(request.method, request.url.path, payload),
        command=command,
    )
    return outcome_response(outcome, headers)


def outcome_response(outcome: Outcome, headers: dict[str, str] | None = None) -> Response:
    all_headers = dict(headers or {})
    if outcome.replayed:
        all_headers["Idempotent-Replayed"] = "true"
    return Response(
        outcome.body, outcome.status_code, headers=all_headers, media_type="application/json"
    )
