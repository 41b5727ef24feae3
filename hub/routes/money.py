"""Tips, the caller's wallet and statement."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import Response

from hub import responses
from hub.errors import ApiError
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
    rate_limit,
    respond_once,
    when,
)
from hub.idempotency import idempotency_key
from hub.openapi import ID, PAGE, operation, query
from hub.routes.payments import provider_account, start_payment
from ledger.accounts import Role, balances
from ledger.db import UnitOfWork, unit_of_work
from ledger.errors import InvalidTransfer
from ledger.ids import stored_id
from ledger.money import Money
from ledger.payments import Purpose
from ledger.sales import creator_earnings
from ledger.statements import balance_as_of, list_entries
from ledger.tips import TipDirection, list_tips
from ledger.wallet_tips import TipCommand


class TipRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    creator_id: StrictStr = Field(min_length=1, max_length=255)
    amount: StrictInt = Field(gt=0, le=MAX_SAFE_INTEGER)
    currency: StrictStr
    message: StrictStr | None = Field(default=None, max_length=280)
    source: Literal["wallet", "card"] = "wallet"
    provider: StrictStr | None = None  # with source "card"


@operation(
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
    returns={"201": responses.Tip, "202": responses.CardCheckout},
)
async def create_tip(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    key = idempotency_key(request.headers.get("idempotency-key"))
    payload = await json_object(request)
    tip = parse(TipRequest, payload)
    await check_currency(hub, tip.currency, principal.app_id)
    amount = Money(tip.amount, tip.currency)
    by_card = tip.source == "card"
    provider = await provider_account(hub, tip.provider, principal.app_id) if by_card else None
    headers = await rate_limit(hub, request, "payments" if by_card else "transfers", principal)
    creator = stored_id(principal.app_id, tip.creator_id)
    await hub.check_creator(creator, principal.app_id)
    fee_bps = await hub.fee_bps(principal.app_id)

    async def by_provider(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        assert provider is not None
        if principal.user_id == creator:
            raise InvalidTransfer("you cannot pay yourself", param="creator_id")
        await creator_earnings(uow.session, creator, tip.currency)  # 404 before paying
        payment = await start_payment(
            hub,
            uow,
            user_id=principal.user_id,
            provider=provider,
            amount=amount,
            purpose=Purpose.TIP,
            details={"creator_id": creator, "message": tip.message, "fee_bps": fee_bps},
        )
        return 202, {"payment": payment, "checkout_url": payment["checkout_url"]}

    if not by_card:
        command = TipCommand(
            fan_id=principal.user_id,
            key=key,
            fingerprint=fingerprint(request, payload),
            creator_id=creator,
            amount=amount,
            fee_bps=fee_bps,
            message=tip.message,
        )
        # The tip joins the next group commit, which posts it, saves its answer (or refusal)
        # under the key and adds its follow-ups to the outbox in one call to PostgreSQL; the
        # batch's events are published after the commit, before any of its requests is answered.
        return answered(await hub.tips.submit(command), headers)
    return await respond_once(hub, request, principal, key, payload, by_provider, headers)


@operation(
    "The caller's tips, newest first (keyset pagination): received as the creator, "
    "or sent as the fan",
    {
        "200": "A page: data [{id, fan_id, fan_name, creator_id, creator_name, "
        "amount, fee, net, message, payment_id, created_at}], next_cursor, has_more",
        "422": "A bad query parameter",
    },
    params=[
        query(
            "direction",
            {"enum": ["received", "sent"]},
            "Default received for creators, sent for everyone else",
        ),
        *PAGE,
    ],
    returns=responses.TipPage,
)
async def tips(request: Request) -> Response:
    """The caller's tips, newest first; `?direction=received|sent&limit=&before=`."""
    hub = hub_of(request)
    principal = principal_of(request)
    default = "received" if principal.role is Role.CREATOR else "sent"
    direction = request.query_params.get("direction", default)
    if direction not in ("received", "sent"):
        raise ApiError(422, "invalid_request", "direction: must be received or sent", "direction")
    limit, before = page_query(request)
    # The primary, not the replica: a live page reads this right after its socket's position is
    # set, and a tip committed before that position is replayed by nobody else.
    async with unit_of_work(hub.sessions) as uow:
        page, cursor = await list_tips(
            uow.session,
            principal.user_id,
            cast(TipDirection, direction),
            limit=limit,
            before=before,
        )
    return page_response(page, cursor)


@operation(
    "The caller's balances: posted, held and available per account",
    {"200": "Balances", "422": "as_of is not an ISO 8601 time with a zone"},
    params=[
        query(
            "as_of",
            {"type": "string", "format": "date-time"},
            "Posted balances as of this time",
        )
    ],
    returns=responses.WalletAnswer,
)
async def wallet(request: Request) -> Response:
    """The caller's balances now, or with `?as_of=<ISO 8601 time>` the posted balances then."""
    hub = hub_of(request)
    principal = principal_of(request)
    at = when(request, "as_of")
    # The primary, for the same reason as tips: a balance a page shows on connect is not
    # corrected until the account's next posting, so it must not lag.
    async with unit_of_work(hub.sessions) as uow:
        accounts = await balances(uow.session, principal.user_id)
        if at is None:
            listed = [account.as_json() for account in accounts]
        else:
            listed = [
                {
                    "id": account.id,
                    "kind": account.kind,
                    "currency": account.currency,
                    "balance": await balance_as_of(uow.session, account.id, at),
                }
                for account in accounts
            ]
    body: dict[str, Any] = {"user_id": principal.user_id, "balances": listed}
    if at is not None:
        body["as_of"] = request.query_params["as_of"]
    return json_response(body)


@operation(
    "The caller's entries, newest first (keyset pagination)",
    {"200": "A page: data, next_cursor, has_more", "422": "A bad query parameter"},
    params=[
        query("limit", {"type": "integer", "minimum": 1, "maximum": 100}, "Page size"),
        query("before", ID, "The next_cursor of the previous page"),
        query("kind", {"type": "string"}, "Transfer kind: tip, topup, purchase, ..."),
        query("account", {"enum": ["wallet", "earnings"]}, "Which account"),
        query("currency", {"type": "string"}, "ISO 4217 code"),
    ],
    returns=responses.StatementPage,
)
async def transactions(request: Request) -> Response:
    """The caller's entries, newest first; `?limit=&before=&kind=&account=&currency=`."""
    hub = hub_of(request)
    principal = principal_of(request)
    limit, before = page_query(request)
    account = request.query_params.get("account")
    if account not in (None, "wallet", "earnings"):
        raise ApiError(422, "invalid_request", "account: must be wallet or earnings", "account")
    async with unit_of_work(hub.read_sessions) as uow:
        page, cursor = await list_entries(
            uow.session,
            principal.user_id,
            limit=limit,
            before=before,
            kind=request.query_params.get("kind"),
            account_kind=account,
            currency=request.query_params.get("currency"),
        )
    return page_response(page, cursor)
