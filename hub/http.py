"""Helpers shared by the routes: the input gate (JSON bodies, ids, queries and times validated
into 4xx), roles, rate limits."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from hub.auth import Principal
from hub.errors import ApiError, JSONResponse
from hub.idempotency import Command, Outcome, run_once
from hub.metrics import RATE_LIMITED
from hub.ratelimit import RateLimited
from hub.state import Hub
from ledger.accounts import DEFAULT_APP, Role
from ledger.answers import Answer
from ledger.db import BIGINT_MAX
from ledger.idempotency import request_fingerprint
from ledger.ids import platform_json
from ledger.statements import MAX_PAGE
from providers.jsontext import JsonRefused, loads

M = TypeVar("M", bound=BaseModel)
MAX_SAFE_INTEGER = 2**53 - 1  # the largest amount a JavaScript client reads exactly
# Times and dates a request may name: a ledger has nothing before, and nothing far after.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

# In a body's text: no NUL, no C0 control but tab and newlines, no DEL, no lone surrogate
# (PostgreSQL stores none of them, and none belongs in a name, message or id).
_BAD_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_DIGITS = re.compile(r"-?[0-9]{1,19}")
# U+001F written in a JSON string (an escape: JSON allows no raw control character there),
# not an escaped backslash followed by "u001f". It separates a stored user id's app from the
# platform's id (ledger.ids), so no text Hub takes in may hold it.
_SEPARATOR_ESCAPE = re.compile(rb"(?:^|[^\\])(?:\\\\)*\\u001[fF]")


def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object, within the hub's JSON limits (its size was limited at the
    edge, hub.middleware.BodyLimit)."""
    raw = await request.body()
    if optional and not raw.strip():
        return {}
    if b"\\u001" in raw and _SEPARATOR_ESCAPE.search(raw):
        raise ApiError(
            422, "invalid_request", "the body must not hold the control character U+001F"
        )
    try:
        payload = loads(raw, hub_of(request).json_limits)
    except JsonRefused as exc:
        raise ApiError(400, "invalid_json", f"the body must be a JSON object: {exc}") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return payload


def parse(model: type[M], payload: dict[str, Any]) -> M:
    """Validate `payload` into `model`, or raise a 422 naming the first field at fault. An
    unknown field is found before pydantic runs, so thousands of them cost one lookup, not
    thousands of errors; every text of the result is then checked for control characters."""
    if model.model_config.get("extra") == "forbid":
        known = _fields(model)
        for key in payload:
            if key not in known:
                name = key[:64]
                raise ApiError(422, "invalid_request", f"{name}: no such field", name)
    try:
        parsed = model.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_context=False, include_input=False)[0]
        param = ".".join(str(part) for part in error["loc"]) or None
        message = str(error["msg"]).removeprefix("Value error, ")
        raise ApiError(422, "invalid_request", f"{param}: {message}", param) from None
    for param, value in _texts(parsed):
        if _BAD_TEXT.search(value):
            raise ApiError(
                422,
                "invalid_request",
                f"{param}: must not contain NUL or other control characters",
                param,
            )
    return parsed


@functools.cache
def _fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(
        name
        for key, field in model.model_fields.items()
        for name in (key, field.alias)
        if name is not None
    )


def _texts(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, str]]:
    for name, value in model:
        if isinstance(value, str):
            yield prefix + name, value
        elif isinstance(value, BaseModel):
            yield from _texts(value, f"{prefix}{name}.")


def int64(text: str | None) -> int | None:
    """`text` as a bigint (decimal digits, an optional minus, nothing else), or None."""
    if text is None or not _DIGITS.fullmatch(text):
        return None
    value = int(text)
    return value if -BIGINT_MAX - 1 <= value <= BIGINT_MAX else None


def path_id(request: Request, name: str, missing: Exception) -> int:
    """A positive bigint id from the path; anything else is `missing` (the resource's 404)."""
    value = int64(request.path_params[name])
    if value is None or value <= 0:
        raise missing
    return value


def when(request: Request, name: str) -> datetime | None:
    """`?name=` as an ISO 8601 time with a zone, within EARLIEST and LATEST."""
    text = request.query_params.get(name)
    return None if text is None else moment(text, name)


def moment(text: str, name: str) -> datetime:
    """`text` (the input `name`) as an ISO 8601 time with a zone, within EARLIEST and LATEST."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "invalid_request", f"{name}: must be an ISO 8601 time", name) from None
    if at.tzinfo is None:
        raise ApiError(422, "invalid_request", f"{name}: needs a time zone", name)
    try:
        within = EARLIEST <= at < LATEST
    except OverflowError:  # 9999-12-31T23:59:59-14:00 is past the year 9999 in UTC
        within = False
    if not within:
        raise ApiError(422, "invalid_request", f"{name}: must be from 1970 to 2099", name)
    return at


def day(request: Request, name: str, default: date) -> date:
    """`?name=` as a YYYY-MM-DD date within EARLIEST and LATEST, or `default`."""
    text = request.query_params.get(name)
    if not text:
        return default
    try:
        value = date.fromisoformat(text)
    except ValueError:
        raise ApiError(422, "invalid_request", f"{name}: a date as YYYY-MM-DD", name) from None
    if not EARLIEST.date() <= value < LATEST.date():
        raise ApiError(422, "invalid_request", f"{name}: must be from 1970 to 2099", name)
    return value


async def check_currency(hub: Hub, currency: str, app_id: str | None = None) -> None:
    """422 unless `currency` is one the app's users may use (the deployment's, without an
    app)."""
    accepted = hub.settings.currencies if app_id is None else await hub.currencies(app_id)
    if currency not in accepted:
        raise ApiError(
            422,
            "invalid_request",
            f"currency: must be one of {', '.join(accepted)}",
            "currency",
        )


def require_role(principal: Principal, *roles: Role) -> None:
    """403 unless the caller has one of `roles`. The admin role is the deployment's: only the
    default app's admins hold it (another app manages itself with its API keys)."""
    if principal.role not in roles or (
        principal.role is Role.ADMIN and Role.ADMIN in roles and not is_operator(principal)
    ):
        names = " or ".join(role.value for role in roles)
        raise ApiError(403, "forbidden", f"this needs the {names} role")


def is_operator(principal: Principal) -> bool:
    """An admin of the deployment: the admin role in the default app's token."""
    return principal.role is Role.ADMIN and principal.app_id == DEFAULT_APP


def query_int(request: Request, name: str, default: int | None = None) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return default
    value = int64(text)
    if value is None:
        raise ApiError(422, "invalid_request", f"{name}: must be a 64-bit integer", name)
    return value


def page_query(request: Request, default_limit: int = 20) -> tuple[int, int | None]:
    """`?limit=` (1 to MAX_PAGE) and `?before=` (a previous page's next_cursor) of a keyset page."""
    limit = query_int(request, "limit", default_limit)
    assert limit is not None
    if not 1 <= limit <= MAX_PAGE:
        raise ApiError(422, "invalid_request", f"limit: must be 1 to {MAX_PAGE}", "limit")
    before = query_int(request, "before")
    if before is not None and before <= 0:
        raise ApiError(422, "invalid_request", "before: must be a next_cursor", "before")
    return limit, before


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
        fingerprint=fingerprint(request, payload),
        command=command,
    )
    return outcome_response(outcome, headers)


def answered(answer: Answer, headers: dict[str, str] | None = None) -> Response:
    """The response to a group-committed command: its answer (posted, refused or replayed), or
    its key's error (in flight, reused), which nothing was saved for."""
    if answer.error is not None:
        raise answer.error
    return outcome_response(Outcome(answer.status, answer.body, answer.replayed), headers)


def fingerprint(request: Request, payload: dict[str, Any]) -> str:
    """What makes a request under an Idempotency-Key the same request again."""
    return request_fingerprint(request.method, request.url.path, payload)


def outcome_response(outcome: Outcome, headers: dict[str, str] | None = None) -> Response:
    all_headers = dict(headers or {})
    if outcome.replayed:
        all_headers["Idempotent-Replayed"] = "true"
    return Response(
        platform_json(outcome.body),
        outcome.status_code,
        headers=all_headers,
        media_type="application/json",
    )
