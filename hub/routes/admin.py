"""Admin routes: refunds, the platform fee, and the dead-letter list."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from hub import responses
from hub.errors import ApiError
from hub.guard import principal_of
from hub.http import (
    MAX_SAFE_INTEGER,
    hub_of,
    json_object,
    json_response,
    parse,
    path_id,
    respond_once,
)
from hub.idempotency import idempotency_key
from hub.openapi import operation
from jobs import deadletter
from ledger.db import BIGINT_MAX, UnitOfWork, unit_of_work
from ledger.errors import UnknownFailedJob
from ledger.fees import MAX_FEE_BPS, current_fee_bps, set_fee_bps
from ledger.operations import list_failed_jobs
from ledger.refunds import refund_payment


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payment_id: StrictInt = Field(gt=0, le=BIGINT_MAX)
    amount: StrictInt | None = Field(default=None, gt=0, le=MAX_SAFE_INTEGER)  # default: all left


class FeeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bps: StrictInt = Field(ge=0, le=MAX_FEE_BPS)


@operation(
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
    returns=responses.Refund,
)
async def refund(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    key = idempotency_key(request.headers.get("idempotency-key"))
    payload = await json_object(request)
    body = parse(RefundRequest, payload)

    async def command(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        result = await refund_payment(
            uow.session,
            payment_id=body.payment_id,
            amount=body.amount,
            requested_by=principal.user_id,
        )
        hub.publish_after_commit(uow, result.events)
        return 201, {**result.refund.as_json(), "payment": result.payment.as_json()}

    return await respond_once(hub, request, principal, key, payload, command)


@operation(
    "The platform fee in force, in basis points (admins)",
    {"200": "{bps}", "403": "Not an admin"},
    returns=responses.PlatformFee,
)
async def platform_fee(request: Request) -> Response:
    hub = hub_of(request)
    async with unit_of_work(hub.sessions) as uow:
        bps = await current_fee_bps(uow.session, hub.settings.platform_fee_bps)
    return json_response({"bps": bps})


@operation(
    "Change the platform fee (admins); every node applies it at once",
    {"200": "{bps}", "403": "Not an admin"},
    body=FeeRequest,
    returns=responses.PlatformFee,
)
async def set_platform_fee(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    body = parse(FeeRequest, await json_object(request))
    async with unit_of_work(hub.sessions) as uow:
        await set_fee_bps(uow.session, body.bps, principal.user_id)
        uow.after_commit(lambda: hub.fees.changed(body.bps))
    return json_response({"bps": body.bps})


@operation(
    "Jobs that failed for good, newest first (admins)",
    {
        "200": "{data: [{id, job, job_id, args, error, tries, failed_at, "
        "retried_at, retried_by, retry_job_id}]}",
        "403": "Not an admin",
    },
    returns=responses.FailedJobs,
)
async def failed_jobs(request: Request) -> Response:
    """Jobs that failed for good, newest first (admins)."""
    hub = hub_of(request)
    async with unit_of_work(hub.sessions) as uow:
        jobs = await list_failed_jobs(uow.session, limit=100)
    return json_response({"data": jobs})


@operation(
    "Enqueue a failed job again with its arguments; each entry once (admins)",
    {
        "202": "The entry, with retried_at, retried_by and retry_job_id",
        "403": "Not an admin",
        "404": "failed_job_not_found",
        "409": "failed_job_already_retried, or failed_job_not_retriable (a job "
        "this release does not run)",
        "503": "service_unavailable: Redis did not take the job; nothing changed",
    },
    returns=responses.FailedJob,
)
async def retry_failed_job(request: Request) -> Response:
    """Enqueue a dead-lettered job again with its arguments, once per entry (admins)."""
    hub = hub_of(request)
    principal = principal_of(request)
    failed_id = path_id(
        request, "failed_id", UnknownFailedJob("no such failed job", param="failed_id")
    )
    try:
        retried = await deadletter.retry(hub.sessions, hub.queue, failed_id, principal.user_id)
    except (RedisError, OSError, TimeoutError):
        raise ApiError(
            503, "service_unavailable", "the job queue (Redis) is unavailable; retry shortly"
        ) from None
    return json_response(retried, 202)
