"""Payouts of a creator's earnings through a provider."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import Response

from hub import responses
from hub.guard import principal_of
from hub.http import (
    MAX_SAFE_INTEGER,
    answered,
    check_currency,
    fingerprint,
    hub_of,
    is_operator,
    json_object,
    json_response,
    parse,
    path_id,
    rate_limit,
)
from hub.idempotency import idempotency_key
from hub.openapi import operation
from hub.routes.payments import provider_account
from ledger.db import unit_of_work
from ledger.errors import UnknownPayout
from ledger.money import Money
from ledger.payout_requests import PayoutCommand
from ledger.payouts import get_payout


class PayoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictInt = Field(gt=0, le=MAX_SAFE_INTEGER)
    currency: StrictStr
    provider: StrictStr | None = None  # default: HUB_PAYOUT_PROVIDER


@operation(
    "Pay out earnings (creators): held now, sent by a job, settled by webhook",
    {
        "201": "The pending payout",
        "402": "More than the available earnings",
        "403": "Not a creator",
    },
    body=PayoutRequest,
    idempotent=True,
    limited=True,
    returns=responses.Payout,
)
async def create(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    key = idempotency_key(request.headers.get("idempotency-key"))
    payload = await json_object(request)
    body = parse(PayoutRequest, payload)
    # Any of the deployment's: earnings in a currency the app no longer takes can still leave.
    await check_currency(hub, body.currency)
    named = body.provider or hub.settings.payout_provider
    provider = await provider_account(hub, named, principal.app_id)
    headers = await rate_limit(hub, request, "transfers", principal)

    # The payout joins the next group commit: its hold, its row and its events commit in one
    # call, with the answer under the key (the events' trigger queues `payout.send`).
    command = PayoutCommand(
        creator_id=principal.user_id,
        key=key,
        fingerprint=fingerprint(request, payload),
        amount=Money(body.amount, body.currency),
        provider=provider,
    )
    return answered(await hub.payouts.submit(command), headers)


@operation(
    "One of the caller's payouts",
    {"200": "The payout", "404": "payout_not_found"},
    returns=responses.Payout,
)
async def show(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    payout_id = path_id(request, "payout_id", UnknownPayout("no such payout", param="payout_id"))
    async with unit_of_work(hub.sessions) as uow:
        payout = await get_payout(uow.session, payout_id=payout_id)
    if payout.creator_id != principal.user_id and not is_operator(principal):
        raise UnknownPayout("no such payout", param="payout_id")
    return json_response(payout.as_json())
