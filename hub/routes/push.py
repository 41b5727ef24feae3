"""Web Push: the hub's public VAPID key, and the caller's browser subscriptions."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import Response

from hub import responses
from hub.errors import ApiError
from hub.guard import principal_of
from hub.http import hub_of, json_object, json_response, parse
from hub.openapi import operation
from hub.state import Hub
from hub.vapid import b64url_decode, public_key_of
from jobs.push import endpoint_problem
from ledger.db import unit_of_work
from ledger.push import delete_subscription, save_subscription


class SubscriptionKeys(BaseModel):
    model_config = ConfigDict(extra="ignore")

    p256dh: StrictStr = Field(max_length=200)
    auth: StrictStr = Field(max_length=100)


class SubscriptionRequest(BaseModel):
    """What the browser's `PushSubscription.toJSON()` gives."""

    model_config = ConfigDict(extra="ignore")  # browsers may add fields; we store these

    endpoint: StrictStr = Field(min_length=1, max_length=2048)
    expirationTime: StrictInt | None = None  # the browser's own name, ignored
    keys: SubscriptionKeys


class UnsubscribeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: StrictStr = Field(min_length=1, max_length=2048)


def _public_key(hub: Hub) -> str | None:
    key = hub.settings.vapid_private_key
    return public_key_of(key.get_secret_value()) if key is not None else None


@operation(
    "Whether Web Push is on, and the hub's VAPID public key (applicationServerKey)",
    {"200": "{enabled, public_key}"},
    returns=responses.PushConfig,
)
async def config(request: Request) -> Response:
    """Whether push is on, and the applicationServerKey to subscribe with (public)."""
    public_key = _public_key(hub_of(request))
    return json_response({"enabled": public_key is not None, "public_key": public_key})


def _invalid(param: str, message: str) -> ApiError:
    return ApiError(422, "invalid_request", f"{param}: {message}", param)


def _check(body: SubscriptionRequest, hosts: tuple[str, ...]) -> None:
    problem = endpoint_problem(body.endpoint, hosts)  # the SSRF guard: see endpoint_problem
    if problem is not None:
        raise _invalid("endpoint", problem)
    try:
        point = b64url_decode(body.keys.p256dh)
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        point = b""
    if len(point) != 65 or point[0] != 4:
        raise _invalid("keys.p256dh", "must be a base64url uncompressed P-256 point (65 bytes)")
    try:
        secret = b64url_decode(body.keys.auth)
    except ValueError:
        secret = b""
    if len(secret) != 16:
        raise _invalid("keys.auth", "must be 16 bytes, base64url")


@operation(
    "Save the browser's push subscription (PushSubscription.toJSON()) for the "
    "caller; creators get a push per tip while no page of theirs is open",
    {
        "201": "{id, endpoint, created_at}; the caller's oldest beyond 10 are dropped",
        "409": "push_disabled: no VAPID key on this hub",
        "422": "An endpoint that is not an allowed push service, or bad keys",
    },
    body=SubscriptionRequest,
    returns=responses.PushSubscription,
)
async def subscribe(request: Request) -> Response:
    """Save the browser's subscription for the caller (the same endpoint again moves or renews
    it); the caller's oldest beyond ten are dropped."""
    hub = hub_of(request)
    principal = principal_of(request)
    if hub.settings.vapid_private_key is None:
        raise ApiError(409, "push_disabled", "Web Push is not configured on this hub")
    body = parse(SubscriptionRequest, await json_object(request))
    _check(body, hub.settings.push_endpoint_hosts)
    async with unit_of_work(hub.sessions) as uow:
        saved = await save_subscription(
            uow.session, principal.user_id, body.endpoint, body.keys.p256dh, body.keys.auth
        )
    return json_response(saved.as_json(), 201)


@operation(
    "Delete one of the caller's push subscriptions by its endpoint",
    {"204": "Deleted", "404": "push_subscription_not_found"},
    body=UnsubscribeRequest,
)
async def unsubscribe(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    body = parse(UnsubscribeRequest, await json_object(request))
    async with unit_of_work(hub.sessions) as uow:
        await delete_subscription(uow.session, principal.user_id, body.endpoint)
    return Response(status_code=204)
