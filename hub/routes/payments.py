"""Provider payments: top-ups, and the card side of tips and purchases."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hub import responses
from hub.errors import ApiError
from hub.guard import principal_of
from hub.http import (
    MAX_SAFE_INTEGER,
    check_currency,
    hub_of,
    is_operator,
    json_object,
    json_response,
    parse,
    path_id,
    rate_limit,
    respond_once,
)
from hub.idempotency import idempotency_key
from hub.openapi import operation
from hub.state import Hub
from ledger.db import UnitOfWork, unit_of_work
from ledger.errors import UnknownPayment
from ledger.ids import owner_of
from ledger.money import Money
from ledger.payments import (
    Purpose,
    attach_checkout,
    create_payment,
    find_by_reference,
    get_payment,
)
from providers.base import CheckoutRequest


class PaymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: StrictInt = Field(gt=0, le=MAX_SAFE_INTEGER)
    currency: StrictStr
    provider: StrictStr


async def provider_account(hub: Hub, name: str | None, app_id: str) -> str:
    """The account the app's users pay through at the provider `name`: the app's own if it has
    one (ledger.app_providers), else the deployment's; 422 naming those it may use."""
    account = await hub.providers.of_app(app_id, name) if name else None
    if account is None:
        available = ", ".join(hub.providers.offered(app_id)) or "none configured"
        raise ApiError(422, "invalid_request", f"provider: must be one of: {available}", "provider")
    return account


async def start_payment(
    hub: Hub,
    uow: UnitOfWork,
    *,
    user_id: str,
    provider: str,
    amount: Money,
    purpose: Purpose,
    details: Mapping[str, Any],
) -> dict[str, Any]:
    """Create the pending payment and ask the provider for its checkout, in the caller's unit of
    work. If the provider refuses, ProviderError rolls everything back (and the idempotency key
    stays free, so the client may retry)."""
    payment = await create_payment(
        uow.session,
        user_id=user_id,
        provider=provider,
        amount=amount,
        purpose=purpose,
        details=details,
    )
    app_id, platform_user = owner_of(user_id)  # what the provider's dashboard shows
    account = await hub.providers.get(provider)
    if account is None:  # removed since provider_account chose it
        raise ApiError(422, "invalid_request", "provider: no longer configured", "provider")
    checkout = await account.initialize(
        CheckoutRequest(
            reference=payment.reference,
            amount=amount.amount,
            currency=amount.currency,
            # Paystack insists on an email; Hub knows none, so it sends a stable stand-in.
            email=f"{hashlib.sha256(user_id.encode()).hexdigest()[:16]}@customers.hub.invalid",
            callback_url=f"{hub.public_url}/checkout/return?reference={payment.reference}",
            metadata={"app_id": app_id, "user_id": platform_user, "purpose": purpose.value},
        )
    )
    payment = await attach_checkout(
        uow.session, payment.id, checkout.provider_ref, checkout.checkout_url
    )
    return payment.as_json()


@operation(
    "Top up the wallet through a provider: a pending payment and its checkout_url",
    {"201": "The pending payment", "502": "provider_error"},
    body=PaymentRequest,
    idempotent=True,
    limited=True,
    returns=responses.Payment,
)
async def create(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    key = idempotency_key(request.headers.get("idempotency-key"))
    payload = await json_object(request)
    body = parse(PaymentRequest, payload)
    await check_currency(hub, body.currency, principal.app_id)
    provider = await provider_account(hub, body.provider, principal.app_id)
    headers = await rate_limit(hub, request, "payments", principal)

    async def command(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        created = await start_payment(
            hub,
            uow,
            user_id=principal.user_id,
            provider=provider,
            amount=Money(body.amount, body.currency),
            purpose=Purpose.TOPUP,
            details={},
        )
        return 201, created

    return await respond_once(hub, request, principal, key, payload, command, headers)


@operation(
    "One of the caller's payments",
    {"200": "The payment", "404": "payment_not_found"},
    returns=responses.Payment,
)
async def show(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    payment_id = path_id(
        request, "payment_id", UnknownPayment("no such payment", param="payment_id")
    )
    async with unit_of_work(hub.sessions) as uow:
        payment = await get_payment(uow.session, payment_id)
    if payment.user_id != principal.user_id and not is_operator(principal):
        raise UnknownPayment("no such payment", param="payment_id")  # not theirs: not found
    return json_response(payment.as_json())


async def checkout_return(request: Request) -> Response:
    """Where a provider's checkout sends the payer back: to the fan page with the payment's id,
    where it says "being confirmed" until the payment settles (read over HTTP by its owner, or
    heard on the socket). The webhook, not this visit, credits."""
    reference = request.query_params.get("reference", "")[:64]
    payment = None
    if reference:
        async with unit_of_work(hub_of(request).sessions) as uow:
            payment = await find_by_reference(uow.session, reference)
    target = f"/app/fan?{urlencode({'topup': payment.id})}" if payment else "/app/fan"
    return RedirectResponse(target, status_code=303)
