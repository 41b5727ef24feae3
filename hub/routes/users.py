"""Who the caller is, and a creator's public profile."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from hub.http import hub_of, json_response
from ledger.db import unit_of_work
from ledger.users import find_user, get_creator


async def me(request: Request) -> Response:
    """The caller: `role` from the token (what this request may do), `name` as stored."""
    hub = hub_of(request)
    principal = await hub.authenticate(request.headers.get("authorization"))
    async with unit_of_work(hub.sessions) as uow:  # the primary: authenticate just wrote it
        user = await find_user(uow.session, principal.user_id, principal.app_id)
    name = user.name if user is not None else principal.name
    return json_response({"id": principal.user_id, "role": principal.role.value, "name": name})


async def creator(request: Request) -> Response:
    hub = hub_of(request)
    principal = await hub.authenticate(request.headers.get("authorization"))
    async with unit_of_work(hub.sessions) as uow:
        found = await get_creator(uow.session, request.path_params["creator_id"], principal.app_id)
    return json_response({"id": found.id, "name": found.name})
