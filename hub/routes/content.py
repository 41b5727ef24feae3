"""Pay-per-view: creators register priced content; fans buy access from a wallet or by card."""

from __future__ import annotations

from typing import Any, Literal

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
    json_object,
    json_response,
    page_query,
    page_response,
    parse,
    path_id,
    rate_limit,
    respond_once,
)
from hub.idempotency import idempotency_key
from hub.openapi import PAGE, operation
from hub.routes.payments import provider_account, start_payment
from ledger.content import (
    create_content,
    ensure_purchasable,
    get_content,
    has_access,
    list_content,
)
from ledger.db import UnitOfWork, unit_of_work
from ledger.errors import UnknownContent
from ledger.ids import stored_id
from ledger.money import Money
from ledger.payments import Purpose
from ledger.users import get_creator
from ledger.wallet_purchases import PurchaseCommand


class ContentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: StrictStr = Field(min_length=1, max_length=200)
    price: StrictInt = Field(gt=0, le=MAX_SAFE_INTEGER)
    currency: StrictStr
    body: StrictStr | None = Field(default=None, max_length=20_000)  # text, or a link


class PurchaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["wallet", "card"] = "wallet"
    provider: StrictStr | None = None


def _content_id(request: Request) -> int:
    return path_id(request, "content_id", UnknownContent("no such content", param="content_id"))


@operation(
    "Register pay-per-view content with a price (creators)",
    {"201": "The content", "403": "Not a creator"},
    body=ContentRequest,
    returns=responses.Content,
)
async def create(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    body = parse(ContentRequest, await json_object(request))
    await check_currency(hub, body.currency, principal.app_id)
    async with unit_of_work(hub.sessions) as uow:
        item = await create_content(
            uow.session,
            principal.user_id,
            body.title,
            Money(body.price, body.currency),
            body=body.body,
        )
    return json_response({**item.as_json(), "body": item.body}, 201)


@operation(
    "Content and whether the caller has access; its body only with access",
    {
        "200": "The content with has_access, and body when has_access is true",
        "404": "content_not_found",
    },
    returns=responses.ContentView,
)
async def show(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    content_id = _content_id(request)
    await hub.check_content(content_id, principal.app_id)
    async with unit_of_work(hub.sessions) as uow:
        item = await get_content(uow.session, content_id)
        access = await has_access(uow.session, principal.user_id, item)
    return json_response(item.as_seen(access))


@operation(
    "A creator's content, newest first (keyset pagination), as the caller sees it",
    {
        "200": "A page: data (each with has_access, and body when it is true), "
        "next_cursor, has_more",
        "404": "creator_not_found",
        "422": "A bad query parameter",
    },
    params=[*PAGE],
    returns=responses.ContentPage,
)
async def by_creator(request: Request) -> Response:
    """A creator's content, newest first, as the caller sees it; `?limit=&before=`."""
    hub = hub_of(request)
    principal = principal_of(request)
    limit, before = page_query(request)
    async with unit_of_work(hub.sessions) as uow:  # the primary: access right after a purchase
        creator = await get_creator(
            uow.session,
            stored_id(principal.app_id, request.path_params["creator_id"]),
            principal.app_id,
        )
        page, cursor = await list_content(
            uow.session, creator.id, principal.user_id, limit=limit, before=before
        )
    return page_response(page, cursor)


@operation(
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
    returns={"201": responses.Purchase, "202": responses.CardCheckout},
)
async def buy(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    key = idempotency_key(request.headers.get("idempotency-key"))
    content_id = _content_id(request)
    payload = await json_object(request, optional=True)
    body = parse(PurchaseRequest, payload)
    by_card = body.source == "card"
    provider = await provider_account(hub, body.provider, principal.app_id) if by_card else None
    headers = await rate_limit(hub, request, "payments" if by_card else "transfers", principal)
    await hub.check_content(content_id, principal.app_id)
    fee_bps = await hub.fee_bps(principal.app_id)

    async def by_provider(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        assert provider is not None
        item = await get_content(uow.session, content_id)
        await ensure_purchasable(uow.session, principal.user_id, item)
        payment = await start_payment(
            hub,
            uow,
            user_id=principal.user_id,
            provider=provider,
            amount=item.price,  # the server's price, never the client's
            purpose=Purpose.PURCHASE,
            details={"content_id": item.id, "creator_id": item.creator_id, "fee_bps": fee_bps},
        )
        return 202, {"payment": payment, "checkout_url": payment["checkout_url"]}

    if not by_card:
        command = PurchaseCommand(
            buyer_id=principal.user_id,
            key=key,
            fingerprint=fingerprint(request, payload),
            content_id=content_id,
            fee_bps=fee_bps,
        )
        return answered(await hub.purchases.submit(command), headers)
    return await respond_once(hub, request, principal, key, payload, by_provider, headers)
