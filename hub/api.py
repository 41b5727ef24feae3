"""HTTP routes of the public API: tips, wallet, health."""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hub.errors import ApiError
from hub.idempotency import idempotency_key, run_once
from hub.state import Hub
from jobs import receipts
from ledger.accounts import balances
from ledger.db import UnitOfWork, unit_of_work
from ledger.idempotency import request_fingerprint
from ledger.money import Money
from ledger.tips import send_tip

M = TypeVar("M", bound=BaseModel)
MAX_SAFE_INTEGER = 2**53 - 1  # the largest amount a JavaScript client reads exactly


class TipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    creator_id: StrictStr = Field(min_length=1, max_length=255)
    amount: StrictInt = Field(gt=0, le=MAX_SAFE_INTEGER)
    currency: StrictStr
    message: StrictStr | None = Field(default=None, max_length=280)


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        payload = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body must be a JSON object") from None
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return payload


def _parse(model: type[M], payload: dict[str, Any]) -> M:
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors()[0]
        param = ".".join(str(part) for part in error["loc"]) or None
        raise ApiError(422, "invalid_request", f"{param}: {error['msg']}", param) from None


def _json(body: dict[str, Any], status: int = 200, **headers: str) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers or None)


async def create_tip(request: Request) -> Response:
    hub = _hub(request)
    principal = await hub.authenticate(request.headers.get("authorization"))
    key = idempotency_key(request.headers.get("idempotency-key"))
    payload = await _json_object(request)
    tip = _parse(TipRequest, payload)
    if tip.currency not in hub.settings.currencies:
        raise ApiError(
            422,
            "invalid_request",
            f"currency: must be one of {', '.join(hub.settings.currencies)}",
            "currency",
        )

    async def command(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        sent = await send_tip(
            uow.session,
            fan_id=principal.user_id,
            creator_id=tip.creator_id,
            amount=Money(tip.amount, tip.currency),
            message=tip.message,
            fee_bps=hub.settings.platform_fee_bps,
            reference=f"tip:{principal.user_id}:{key}",
        )
        uow.after_commit(lambda: hub.publisher.publish(sent.events))
        uow.after_commit(lambda: receipts.enqueue(hub.queue, sent.transfer_id))
        return 201, sent.as_json()

    outcome = await run_once(
        hub.sessions,
        caller_id=principal.user_id,
        key=key,
        fingerprint=request_fingerprint("POST", request.url.path, payload),
        command=command,
    )
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return Response(
        outcome.body, outcome.status_code, headers=headers, media_type="application/json"
    )


async def wallet(request: Request) -> JSONResponse:
    hub = _hub(request)
    principal = await hub.authenticate(request.headers.get("authorization"))
    async with unit_of_work(hub.sessions) as uow:
        accounts = await balances(uow.session, principal.user_id)
    return _json(
        {"user_id": principal.user_id, "balances": [account.as_json() for account in accounts]}
    )


async def healthz(request: Request) -> JSONResponse:
    return _json({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    hub = _hub(request)

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
    ready = all(state == "ok" for state in checks.values())
    down = [name for name, state in checks.items() if state != "ok"]
    body: dict[str, Any] = {"status": "ready" if ready else "unavailable", "checks": checks}
    if not ready:
        body["error"] = {
            "type": "service_unavailable",
            "message": f"{' and '.join(down)} unreachable",
            "param": None,
        }
    return _json(body, 200 if ready else 503)


ROUTES = [
    Route("/api/v1/tips", create_tip, methods=["POST"]),
    Route("/api/v1/wallet", wallet, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
