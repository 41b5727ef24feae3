"""The server API: what a platform's backend calls with its app's API key.

Notifications go into the same durable per-user log as money events (so ordering, recovery and
at-least-once delivery apply to them alike), under the `app.` namespace (`public.app.` on a
creator's public channel) so that no platform type can pass for one of Hub's own.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import Response

from hub import responses
from hub.auth import CONTROL
from hub.errors import ApiError
from hub.guard import key_of
from hub.http import (
    hub_of,
    json_object,
    json_response,
    outcome_response,
    parse,
    path_id,
    query_int,
)
from hub.idempotency import idempotency_key, run_once
from hub.openapi import operation, query
from ledger.accounts import Role, ensure_user
from ledger.apps import (
    MAX_ROTATION_OVERLAP,
    ApiKey,
    Scope,
    create_key,
    get_app,
    list_keys,
    revoke_key,
    rotate_key,
)
from ledger.db import UnitOfWork, unit_of_work
from ledger.errors import UnknownApiKey, UnknownCreator
from ledger.events import PUBLIC_APP_PREFIX, record_events
from ledger.idempotency import request_fingerprint
from ledger.ids import SEPARATOR, stored_id
from ledger.platform import (
    UnknownUser,
    ban_user,
    event_page,
    missing_users,
    user_of_app,
    users_of_app,
)
from realtime import bus
from realtime.presence import user_key

TYPE_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+){0,3}$"
MAX_RECIPIENTS = 1_000
MAX_BAN_SECONDS = 365 * 24 * 3600
MAX_DATA_BYTES = 16 * 1024
MAX_PRESENCE_USERS = 100
USER_ID = Field(default=None, min_length=1, max_length=255)


def idempotency_caller(key: ApiKey) -> str:
    """The keys of one app share their Idempotency-Keys (a rotated key replays the old one's);
    no stored user id starts with the separator (ledger.ids), so no user shares them."""
    return f"{SEPARATOR}{key.app_id}"


class NotificationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: StrictStr = Field(max_length=64, pattern=TYPE_PATTERN)
    data: dict[str, Any] = Field(default_factory=dict)
    user_id: StrictStr | None = USER_ID
    user_ids: list[StrictStr] | None = Field(default=None, min_length=1, max_length=MAX_RECIPIENTS)
    channel: StrictStr | None = USER_ID


def _recipients(body: NotificationRequest) -> tuple[list[str], bool]:
    """The users whose logs get the event, and whether it is for a creator's channel."""
    given = [name for name in ("user_id", "user_ids", "channel") if getattr(body, name)]
    if len(given) != 1:
        raise ApiError(
            422, "invalid_request", "send exactly one of user_id, user_ids and channel", "user_id"
        )
    if body.channel is not None:
        return [body.channel], True
    users = [body.user_id] if body.user_id is not None else list(dict.fromkeys(body.user_ids or []))
    for user in users:
        if not 0 < len(user) <= 255 or CONTROL.search(user):
            raise ApiError(422, "invalid_request", "user_ids: 1-255 characters each", "user_ids")
    return users, False


@operation(
    "Publish a platform event into users' logs (user_id or user_ids, up to "
    "1000; missing users of the app are created as fans) or a creator's public "
    "channel (channel): delivered live, recovered by cursor, readable by "
    "GET /api/v1/events; the type is stored as app.<type> (public.app.<type> "
    "on a channel)",
    {
        "201": "{type, channel, events: [{id, user_id, seq}]}",
        "404": "creator_not_found (channel)",
    },
    body=NotificationRequest,
    idempotent=True,
    returns=responses.Published,
)
async def publish(request: Request) -> Response:
    """POST /api/v1/notifications: one event into each named user's log (missing users of the
    app are created as fans), or into a creator's log for their public channel."""
    hub = hub_of(request)
    key = key_of(request)
    idempotency = idempotency_key(request.headers.get("idempotency-key"))
    payload = await json_object(request)
    body = parse(NotificationRequest, payload)
    named, channel = _recipients(body)
    users = [stored_id(key.app_id, user) for user in named]
    data = json.dumps(body.data, ensure_ascii=False, separators=(",", ":"))
    if len(data.encode()) > MAX_DATA_BYTES:
        raise ApiError(422, "invalid_request", f"data: at most {MAX_DATA_BYTES} bytes", "data")
    type_ = f"{PUBLIC_APP_PREFIX if channel else 'app.'}{body.type}"
    currencies = await hub.currencies(key.app_id)

    async def command(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        if channel:
            creator = await user_of_app(uow.session, users[0], key.app_id)
            if creator is None or creator.role is not Role.CREATOR:
                raise UnknownCreator(f"no creator {users[0]}", param="channel")
        else:
            for user in await missing_users(uow.session, users, key.app_id):
                await ensure_user(uow.session, user, Role.FAN, currencies, app_id=key.app_id)
        events = await record_events(uow.session, [(user, type_, body.data) for user in users])
        hub.publish_after_commit(uow, events)
        return 201, {
            "type": type_,
            "channel": users[0] if channel else None,
            "events": [{"id": e.id, "user_id": e.user_id, "seq": e.seq} for e in events],
        }

    outcome = await run_once(
        hub.sessions,
        caller_id=idempotency_caller(key),
        key=idempotency,
        fingerprint=request_fingerprint(request.method, request.url.path, payload),
        command=command,
    )
    return outcome_response(outcome)


@operation(
    "A user's event log in order, after the event `after` (the cursor the "
    "sockets keep; 0: from the oldest kept)",
    {
        "200": "{user_id, data: [{id, seq, type, occurred_at, data}], has_more, next_after}",
        "404": "user_not_found (in this app)",
        "410": "cursor_expired: `after` is not in the log (or no longer kept)",
    },
    params=[
        {**query("user_id", {"type": "string"}, "The user"), "required": True},
        query("after", {"type": "integer", "minimum": 0}, "An event id, or 0"),
        query(
            "limit",
            {"type": "integer", "minimum": 1, "maximum": 1000},
            "Default 100",
        ),
    ],
    returns=responses.EventPage,
)
async def events(request: Request) -> Response:
    """GET /api/v1/events?user_id=&after=&limit=: a user's log in order, from the event after
    `after` (an event id, the cursor a socket keeps; 0 or none: from the oldest kept)."""
    hub = hub_of(request)
    key = key_of(request)
    user_id = _user_param(request)
    after = query_int(request, "after", 0)
    limit = query_int(request, "limit", 100)
    assert after is not None and limit is not None
    if after < 0:
        raise ApiError(422, "invalid_request", "after: an event id, or 0", "after")
    if not 1 <= limit <= 1000:
        raise ApiError(422, "invalid_request", "limit: 1 to 1000", "limit")
    async with hub.sessions() as session:  # the primary: a cursor a socket just got is there
        page = await event_page(session, key.app_id, user_id, after, limit)
    return json_response(page)


def _user_param(request: Request) -> str:
    user_id = request.query_params.get("user_id")
    if not user_id or len(user_id) > 255 or CONTROL.search(user_id):
        raise ApiError(422, "invalid_request", "user_id: a user's id", "user_id")
    return stored_id(key_of(request).app_id, user_id)


async def presence(request: Request) -> Response:
    """GET /api/v1/presence?user_id=a&user_id=b (with a key): each user's open sockets, over
    every node."""
    hub = hub_of(request)
    key = key_of(request)
    asked = [
        stored_id(key.app_id, user)
        for user in dict.fromkeys(request.query_params.getlist("user_id"))
    ]
    if not asked or len(asked) > MAX_PRESENCE_USERS:
        raise ApiError(
            422, "invalid_request", f"user_id: 1 to {MAX_PRESENCE_USERS} of them", "user_id"
        )
    async with hub.read_sessions() as session:
        theirs = await users_of_app(session, asked, key.app_id)
    users = [
        {
            "id": user,
            "connections": await hub.realtime.presence.count(user_key(user))
            if user in theirs
            else 0,
        }
        for user in asked
    ]
    return json_response({"users": users})


class UserRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["fan", "creator"] = "fan"
    name: StrictStr | None = Field(default=None, min_length=1, max_length=80)
    email: StrictStr | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")


@operation(
    "Create the app's user (and their accounts) ahead of their first request, or "
    "update their name and email; a fan may become a creator, not the reverse",
    {
        "200": "Updated: {id, role, name, email, created_at}",
        "201": "Created",
        "409": "role_change_refused",
    },
    body=UserRequest,
    returns=responses.User,
)
async def put_user(request: Request) -> Response:
    """PUT /api/v1/users/{user_id}: create the app's user (and accounts) ahead of their first
    request, or update their name and email; a fan may become a creator, never the reverse."""
    hub = hub_of(request)
    key = key_of(request)
    user_id = _path_user(request)
    body = parse(UserRequest, await json_object(request))
    role = Role(body.role)
    currencies = await hub.currencies(key.app_id)
    async with unit_of_work(hub.sessions) as uow:
        known = await user_of_app(uow.session, user_id, key.app_id)
        if known is not None and known.role is Role.CREATOR and role is Role.FAN:
            raise ApiError(
                409, "role_change_refused", "a creator cannot become a fan again", "role"
            )
        await ensure_user(
            uow.session,
            user_id,
            role,
            currencies,
            body.name,
            body.email,
            app_id=key.app_id,
        )
        user = await user_of_app(uow.session, user_id, key.app_id)
    assert user is not None
    return json_response(user.as_json(), 200 if known is not None else 201)


@operation(
    "One of the app's users",
    {"200": "{id, role, name, email, created_at}", "404": "user_not_found"},
    returns=responses.User,
)
async def get_user(request: Request) -> Response:
    hub = hub_of(request)
    key = key_of(request)
    user_id = _path_user(request)
    async with hub.sessions() as session:  # the primary: right after a PUT, it is there
        user = await user_of_app(session, user_id, key.app_id)
    if user is None:
        raise UnknownUser(f"no user {user_id}", param="user_id")
    return json_response(user.as_json())


@operation(
    "Close the user's sockets on every node (hub.error `disconnected` first)",
    {
        "200": "{user_id, connections}: the sockets open before",
        "404": "user_not_found",
    },
    returns=responses.Disconnected,
)
async def disconnect(request: Request) -> Response:
    """POST /api/v1/users/{user_id}/disconnect: close the user's sockets on every node (the
    official client does not reconnect by itself after a server's disconnect)."""
    hub = hub_of(request)
    key = key_of(request)
    user_id = _path_user(request)
    async with hub.read_sessions() as session:
        user = await user_of_app(session, user_id, key.app_id)
    if user is None:
        raise UnknownUser(f"no user {user_id}", param="user_id")
    connections = await hub.realtime.presence.count(user_key(user_id))
    await bus.publish_control(hub.redis, {"type": "user.disconnect", "user_id": user_id})
    return json_response({"user_id": user_id, "connections": connections})


class BanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: StrictInt = Field(ge=1, le=MAX_BAN_SECONDS)


@operation(
    "Ban the user for `seconds` (up to a year): their tokens are refused (403 user_banned, "
    "connect_error user_banned) and their sockets closed on every node (hub.error `banned`); "
    "a ban made again replaces the last",
    {"200": "{user_id, banned_until, connections}", "404": "user_not_found"},
    body=BanRequest,
    returns=responses.Banned,
)
async def ban(request: Request) -> Response:
    hub = hub_of(request)
    key = key_of(request)
    user_id = _path_user(request)
    body = parse(BanRequest, await json_object(request))
    async with unit_of_work(hub.sessions) as uow:
        found, until = await ban_user(uow.session, user_id, key.app_id, body.seconds)
    if not found or until is None:
        raise UnknownUser(f"no user {user_id}", param="user_id")
    hub.bans.changed(user_id, until)
    connections = await hub.realtime.presence.count(user_key(user_id))
    await bus.publish_control(
        hub.redis,
        {"type": "user.disconnect", "user_id": user_id, "banned_until": until.isoformat()},
    )
    return json_response(
        {"user_id": user_id, "banned_until": until.isoformat(), "connections": connections}
    )


@operation(
    "Lift the user's ban (their tokens work again on every node within 5 s)",
    {"200": "{user_id, banned_until: null}", "404": "user_not_found"},
    returns=responses.Unbanned,
)
async def unban(request: Request) -> Response:
    hub = hub_of(request)
    key = key_of(request)
    user_id = _path_user(request)
    async with unit_of_work(hub.sessions) as uow:
        found, _ = await ban_user(uow.session, user_id, key.app_id, 0)
    if not found:
        raise UnknownUser(f"no user {user_id}", param="user_id")
    hub.bans.changed(user_id, None)
    return json_response({"user_id": user_id, "banned_until": None})


def _path_user(request: Request) -> str:
    user_id: str = request.path_params["user_id"]
    if not 0 < len(user_id) <= 255 or CONTROL.search(user_id):
        raise ApiError(422, "invalid_request", "user_id: 1-255 characters", "user_id")
    return stored_id(key_of(request).app_id, user_id)


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scopes: list[Literal["publish", "read", "payments", "admin"]] = Field(min_length=1)
    label: StrictStr | None = Field(default=None, max_length=80)


class KeyRotation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: StrictInt = Field(default=24 * 3600, ge=0, le=MAX_ROTATION_OVERLAP)


@operation(
    "The caller's app: its id and name, what it set for itself (`own`: null is the "
    "deployment's) and what applies (`effective`)",
    {
        "200": "{id, name, created_at, own: {fee_bps, currencies, rate_limit_server, "
        "allowed_origins}, effective: {fee_bps, currencies, rate_limit_server, allowed_origins}}"
    },
    returns=responses.App,
)
async def show_app(request: Request) -> Response:
    hub = hub_of(request)
    key = key_of(request)
    async with hub.sessions() as session:
        app = await get_app(session, key.app_id)
    own = await hub.apps.get(key.app_id)
    effective = {
        "fee_bps": await hub.fee_bps(key.app_id),
        "currencies": list(await hub.currencies(key.app_id)),
        "rate_limit_server": own.rate_limit_server or hub.settings.rate_limit_server,
        # the deployment's (HUB_CORS_ORIGINS) are allowed too
        "allowed_origins": list(own.allowed_origins),
    }
    return json_response({**app.as_json(), "own": own.as_json(), "effective": effective})


def _key_id(request: Request) -> int:
    return path_id(request, "key_id", UnknownApiKey("no such API key", param="key_id"))


@operation(
    "The app's API keys: prefix, scopes, label, created, expires, revoked, last "
    "used; never a secret",
    {"200": "{data: [key]}"},
    returns=responses.ApiKeys,
)
async def list_api_keys(request: Request) -> Response:
    """GET /api/v1/api-keys: the app's keys (prefixes, scopes, use; never a secret)."""
    hub = hub_of(request)
    key = key_of(request)
    async with hub.read_sessions() as session:
        keys = await list_keys(session, key.app_id)
    return json_response({"data": [record.as_json() for record in keys]})


@operation(
    "A new key of the app; `secret` is in this answer only (kept as a hash)",
    {"201": "The key and its secret"},
    body=KeyRequest,
    returns=responses.ApiKeyWithSecret,
)
async def create_api_key(request: Request) -> Response:
    """POST /api/v1/api-keys: a new key of the app; its secret is in this answer only."""
    hub = hub_of(request)
    key = key_of(request)
    body = parse(KeyRequest, await json_object(request))
    async with unit_of_work(hub.sessions) as uow:
        record, secret = await create_key(
            uow.session, key.app_id, tuple(Scope(s) for s in body.scopes), body.label
        )
    return json_response({**record.as_json(), "secret": secret}, 201)


@operation(
    "A successor with the same scopes and label; the old key works "
    "overlap_seconds more (default 86400; 0: it ends now)",
    {
        "201": "The new key and its secret",
        "404": "api_key_not_found",
        "409": "api_key_not_rotatable: revoked, expired or rotated already",
    },
    body=KeyRotation,
    returns=responses.ApiKeyWithSecret,
)
async def rotate_api_key(request: Request) -> Response:
    """POST /api/v1/api-keys/{id}/rotate: a successor with the same scopes; the old key works
    `overlap_seconds` more (default a day)."""
    hub = hub_of(request)
    key = key_of(request)
    body = parse(KeyRotation, await json_object(request, optional=True))
    async with unit_of_work(hub.sessions) as uow:
        record, secret = await rotate_key(
            uow.session, key.app_id, _key_id(request), body.overlap_seconds
        )
    return json_response({**record.as_json(), "secret": secret}, 201)


@operation(
    "Revoke the key: refused on every node within 5 seconds",
    {"200": "The key, with revoked_at", "404": "api_key_not_found"},
    returns=responses.ApiKey,
)
async def revoke_api_key(request: Request) -> Response:
    """DELETE /api/v1/api-keys/{id}: ended at once (every node within 5 s)."""
    hub = hub_of(request)
    key = key_of(request)
    async with unit_of_work(hub.sessions) as uow:
        record = await revoke_key(uow.session, key.app_id, _key_id(request))
    return json_response(record.as_json())
