"""The one table from error to HTTP status and error type, and the JSON error shape."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse as StarletteJSONResponse

from hub.auth import AuthError
from hub.keys import InsufficientScope
from hub.ratelimit import LimiterUnavailable, RateLimited
from ledger import errors as ledger
from ledger import webhooks
from ledger.ids import platform_json
from ledger.overlays import TooManyOverlayKeys, UnknownOverlayKey
from ledger.platform import CursorExpired, UnknownUser
from ledger.push import UnknownPushSubscription
from providers.base import ProviderError

log = logging.getLogger(__name__)


class JSONResponse(StarletteJSONResponse):
    """Every JSON body Hub answers with: user ids shown as their platforms know them
    (ledger.ids)."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return platform_json(text).encode()


class ApiError(Exception):
    """A request the hub refuses before any business logic runs (bad input, wrong role)."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.param = param
        self.headers = headers


LEDGER_ERRORS: dict[type[ledger.LedgerError], tuple[int, str]] = {
    ledger.InsufficientFunds: (402, "insufficient_funds"),
    ledger.UnknownCreator: (404, "creator_not_found"),
    ledger.UnknownAccount: (404, "account_not_found"),
    ledger.UnsupportedCurrency: (422, "invalid_request"),
    ledger.InvalidTransfer: (422, "invalid_request"),
    ledger.DuplicateTransfer: (409, "duplicate_transfer"),
    ledger.IdempotencyKeyReused: (422, "idempotency_key_reused"),
    ledger.IdempotencyInFlight: (409, "idempotency_in_flight"),
    ledger.UnknownContent: (404, "content_not_found"),
    ledger.AlreadyPurchased: (409, "already_purchased"),
    ledger.UnknownPayment: (404, "payment_not_found"),
    ledger.UnknownPayout: (404, "payout_not_found"),
    ledger.RefundNotAllowed: (409, "refund_not_allowed"),
    ledger.RefundExceedsPayment: (422, "refund_exceeds_payment"),
    ledger.Forbidden: (403, "forbidden"),
    ledger.InvalidFee: (422, "invalid_request"),
    ledger.UnknownFailedJob: (404, "failed_job_not_found"),
    ledger.FailedJobAlreadyRetried: (409, "failed_job_already_retried"),
    ledger.FailedJobNotRetriable: (409, "failed_job_not_retriable"),
    UnknownUser: (404, "user_not_found"),
    CursorExpired: (410, "cursor_expired"),
    webhooks.UnknownEndpoint: (404, "webhook_endpoint_not_found"),
    webhooks.UnknownDelivery: (404, "webhook_delivery_not_found"),
    webhooks.TooManyEndpoints: (409, "too_many_webhook_endpoints"),
    ledger.UnknownApp: (404, "app_not_found"),
    ledger.DuplicateApp: (409, "app_exists"),
    ledger.UnknownApiKey: (404, "api_key_not_found"),
    ledger.ApiKeyNotRotatable: (409, "api_key_not_rotatable"),
    UnknownOverlayKey: (404, "overlay_key_not_found"),
    TooManyOverlayKeys: (409, "too_many_overlay_keys"),
    UnknownPushSubscription: (404, "push_subscription_not_found"),
}


def error_body(type_: str, message: str, param: str | None = None) -> dict[str, object]:
    return {"error": {"type": type_, "message": message, "param": param}}


def ledger_error_response(exc: ledger.LedgerError) -> tuple[int, dict[str, object]]:
    for cls in type(exc).__mro__:
        if cls in LEDGER_ERRORS:
            status, type_ = LEDGER_ERRORS[cls]
            return status, error_body(type_, exc.message, exc.param)
    return 400, error_body("invalid_request", exc.message, exc.param)


async def _ledger_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ledger.LedgerError)
    status, body = ledger_error_response(exc)
    headers = {"Retry-After": "1"} if isinstance(exc, ledger.IdempotencyInFlight) else None
    return JSONResponse(body, status_code=status, headers=headers)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(
        error_body(exc.type, exc.message, exc.param), status_code=exc.status, headers=exc.headers
    )


async def _auth_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AuthError)
    return JSONResponse(
        error_body(exc.type, exc.message),
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="hub"'},
    )


async def _insufficient_scope(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InsufficientScope)
    return JSONResponse(error_body("insufficient_scope", str(exc)), status_code=403)


async def _rate_limited(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RateLimited)
    return JSONResponse(
        error_body("rate_limited", exc.message), status_code=429, headers=exc.headers
    )


async def _limiter_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse(
        error_body("service_unavailable", "rate limits cannot be checked now; retry shortly"),
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _provider_error(request: Request, exc: Exception) -> JSONResponse:
    log.warning("provider error on %s: %s", request.url.path, exc)
    return JSONResponse(
        error_body("provider_error", f"the payment provider failed: {exc}"), status_code=502
    )


_HTTP_TYPES = {404: "not_found", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    type_ = _HTTP_TYPES.get(exc.status_code, "http_error")
    return JSONResponse(
        error_body(type_, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


# PostgreSQL away, as asyncpg says it: shutting down or not up yet (SQLSTATE class 57P), a
# connection lost or refused (class 08).
_POSTGRES_AWAY = (
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.PostgresConnectionError,
)


def database_unavailable(exc: BaseException, _depth: int = 0) -> bool:
    """PostgreSQL is down or unreachable (not a bug in a query). A connection that died in the
    middle of an operation fails what comes next with a client-side error (the transaction's
    exit, the protocol's state): its cause or context tells."""
    if isinstance(exc, (OSError, TimeoutError, *_POSTGRES_AWAY)):
        return True
    # What asyncpg raises on a connection the server closed under it: a query on it, or the
    # protocol found mid-operation (its InternalClientError comes only from such states).
    if isinstance(exc, asyncpg.exceptions.InternalClientError) or (
        isinstance(exc, asyncpg.exceptions.InterfaceError) and "is closed" in str(exc)
    ):
        return True
    if isinstance(exc, sa_exc.TimeoutError):  # no pool connection came free in time
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        if exc.orig is not None and database_unavailable(exc.orig, _depth + 1):
            return True
    if _depth >= 5:
        return False
    return any(
        linked is not None and linked is not exc and database_unavailable(linked, _depth + 1)
        for linked in (exc.__cause__, exc.__context__)
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    if database_unavailable(exc):
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(
            error_body("service_unavailable", "the database is unavailable; retry shortly"),
            status_code=503,
            headers={"Retry-After": "1"},
        )
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        error_body("internal_error", "something went wrong on our side"), status_code=500
    )


EXCEPTION_HANDLERS = {
    ledger.LedgerError: _ledger_error,
    ApiError: _api_error,
    AuthError: _auth_error,
    InsufficientScope: _insufficient_scope,
    RateLimited: _rate_limited,
    LimiterUnavailable: _limiter_unavailable,
    ProviderError: _provider_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
