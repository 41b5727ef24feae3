"""Overlay keys for creators' tip-alert pages, and presence counts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictStr
from starlette.requests import Request
from starlette.responses import Response

from hub import responses
from hub.errors import ApiError
from hub.guard import by_key, principal_of
from hub.http import (
    hub_of,
    is_operator,
    json_object,
    json_response,
    parse,
    path_id,
)
from hub.openapi import operation, query
from hub.routes import platform
from ledger.db import unit_of_work
from ledger.ids import stored_id
from ledger.overlays import UnknownOverlayKey, create_key, list_keys, revoke_key
from realtime import bus
from realtime.presence import online_key, overlay_key, user_key, viewer_key


class OverlayKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: StrictStr | None = Field(default=None, max_length=80)


def _key_id(request: Request) -> int:
    return path_id(request, "key_id", UnknownOverlayKey("no such overlay key", param="key_id"))


@operation(
    "A new overlay key for the public tip-alert page (creators); shown once",
    {"201": "The key record with `key`", "403": "Not a creator"},
    body=OverlayKeyRequest,
    returns=responses.OverlayKeyWithKey,
)
async def create(request: Request) -> Response:
    """A new overlay key; the key itself is in this answer only."""
    hub = hub_of(request)
    principal = principal_of(request)
    body = parse(OverlayKeyRequest, await json_object(request, optional=True))
    async with unit_of_work(hub.sessions) as uow:
        record, key = await create_key(
            uow.session, principal.user_id, body.label, limit=hub.settings.overlay_keys_per_creator
        )
    return json_response({**record.as_json(), "key": key}, 201)


@operation(
    "The creator's overlay keys (never the keys themselves)",
    {"200": "Keys"},
    returns=responses.OverlayKeys,
)
async def index(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    async with unit_of_work(hub.sessions) as uow:
        keys = await list_keys(uow.session, principal.user_id)
    return json_response({"data": [key.as_json() for key in keys]})


@operation(
    "Revoke: refused from now on, live overlays cut on every node",
    {"200": "The revoked key", "404": "overlay_key_not_found"},
    returns=responses.OverlayKey,
)
async def revoke(request: Request) -> Response:
    """Revoke a key: new connections with it are refused, live ones are cut on every node."""
    hub = hub_of(request)
    principal = principal_of(request)
    key_id = _key_id(request)
    async with unit_of_work(hub.sessions) as uow:
        record = await revoke_key(uow.session, principal.user_id, key_id)
        uow.after_commit(
            lambda: bus.publish_control(
                hub.redis, {"type": "overlay_key.revoked", "key_id": key_id}
            )
        )
    return json_response(record.as_json())


@operation(
    "A new key in place of this one (revoked in the same transaction)",
    {"201": "The new key record with `key`", "404": "overlay_key_not_found"},
    returns=responses.OverlayKeyWithKey,
)
async def rotate(request: Request) -> Response:
    """A new key in place of this one, which is revoked in the same transaction."""
    hub = hub_of(request)
    principal = principal_of(request)
    key_id = _key_id(request)
    async with unit_of_work(hub.sessions) as uow:
        old = await revoke_key(uow.session, principal.user_id, key_id)
        record, key = await create_key(
            uow.session, principal.user_id, old.label, limit=hub.settings.overlay_keys_per_creator
        )
        uow.after_commit(
            lambda: bus.publish_control(
                hub.redis, {"type": "overlay_key.revoked", "key_id": key_id}
            )
        )
    return json_response({**record.as_json(), "key": key}, 201)


@operation(
    "Users connected now across the cluster; ?user_id= adds one user's connections. "
    "With an API key (read): users: [{id, connections}] for each user_id (1-100, "
    "repeated), counting only the app's users",
    {
        "200": "{connected_users, user?: {id, connections}} (token) or "
        "{users: [{id, connections}]} (API key)",
        "403": "Not an admin, or the key lacks `read`",
    },
    params=[query("user_id", {"type": "string"}, "A user to count (repeatable)")],
    returns=responses.Presence,
)
async def presence(request: Request) -> Response:
    """Cluster-wide: users connected now, and with `?user_id=` one user's connections
    (admins). With an API key (`read`): the connections of the app's users named by `user_id`
    (repeated), hub.routes.platform.presence."""
    hub = hub_of(request)
    if by_key(request):
        return await platform.presence(request)
    body: dict[str, object] = {"connected_users": await hub.realtime.presence.count(online_key())}
    user_id = request.query_params.get("user_id")
    if user_id:
        principal = principal_of(request)
        user = stored_id(principal.app_id, user_id)
        connections = await hub.realtime.presence.count(user_key(user))
        body["user"] = {"id": user_id, "connections": connections}
    return json_response(body)


@operation(
    "A creator's live overlays and viewers (that creator or an admin)",
    {"200": "{creator_id, overlays, viewers}", "403": "Neither"},
    returns=responses.CreatorPresence,
)
async def creator_presence(request: Request) -> Response:
    """A creator's live overlays and viewers (the creator, or an admin)."""
    hub = hub_of(request)
    principal = principal_of(request)
    creator_id = stored_id(principal.app_id, request.path_params["creator_id"])
    if not is_operator(principal) and principal.user_id != creator_id:
        raise ApiError(403, "forbidden", "only the creator or an admin sees these counts")
    return json_response(
        {
            "creator_id": creator_id,
            "overlays": await hub.realtime.presence.count(overlay_key(creator_id)),
            "viewers": await hub.realtime.presence.count(viewer_key(creator_id)),
        }
    )
