"""Who the caller is, a creator's public profile, and a creator's goal and live state."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import Response

from hub import responses
from hub.guard import principal_of
from hub.http import (
    MAX_SAFE_INTEGER,
    check_currency,
    hub_of,
    json_object,
    json_response,
    parse,
)
from hub.openapi import operation
from ledger.creators import end_goal, goal_of, live_of, set_goal, set_live
from ledger.db import unit_of_work
from ledger.ids import stored_id
from ledger.users import find_user, get_creator


@operation("The caller: {id, role, name}", {"200": "The caller"}, returns=responses.Me)
async def me(request: Request) -> Response:
    """The caller: `role` from the token (what this request may do), `name` as stored."""
    hub = hub_of(request)
    principal = principal_of(request)
    async with unit_of_work(hub.sessions) as uow:  # the primary: authenticate just wrote it
        user = await find_user(uow.session, principal.user_id, principal.app_id)
    name = user.name if user is not None else principal.name
    return json_response({"id": principal.user_id, "role": principal.role.value, "name": name})


@operation(
    "A creator's public profile: name, goal with what it raised, live state",
    {"200": "{id, name, goal, live}", "404": "creator_not_found"},
    returns=responses.Creator,
)
async def creator(request: Request) -> Response:
    """A creator's public profile: name, goal (with what it raised so far) and live state."""
    hub = hub_of(request)
    principal = principal_of(request)
    async with unit_of_work(hub.sessions) as uow:
        asked = stored_id(principal.app_id, request.path_params["creator_id"])
        found = await get_creator(uow.session, asked, principal.app_id)
        goal = await goal_of(uow.session, found.id)
        live = await live_of(uow.session, found.id)
    return json_response({"id": found.id, "name": found.name, "goal": goal, "live": live})


class GoalRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: StrictStr = Field(min_length=1, max_length=80)
    target: StrictInt = Field(gt=0, le=MAX_SAFE_INTEGER)
    currency: StrictStr


class LiveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    live: StrictBool
    title: StrictStr | None = Field(default=None, min_length=1, max_length=80)


@operation(
    "The creator's tipping goal, counted from now (replaces any); its progress is "
    "the tips received in its currency since; goes out as public.goal",
    {
        "200": "{goal: {title, target, currency, raised, started_at}}",
        "403": "Not a creator",
    },
    body=GoalRequest,
    returns=responses.GoalAnswer,
)
async def put_goal(request: Request) -> Response:
    """PUT /api/v1/goal: the creator's tipping goal, counted from now (replaces any)."""
    hub = hub_of(request)
    principal = principal_of(request)
    body = parse(GoalRequest, await json_object(request))
    await check_currency(hub, body.currency, principal.app_id)
    async with unit_of_work(hub.sessions) as uow:
        goal, events = await set_goal(
            uow.session, principal.user_id, body.title, body.target, body.currency
        )
        hub.publish_after_commit(uow, events)
    return json_response({"goal": goal})


@operation(
    "End the goal (public.goal {goal: null})",
    {"204": "Ended (or there was none)", "403": "Not a creator"},
)
async def delete_goal(request: Request) -> Response:
    hub = hub_of(request)
    principal = principal_of(request)
    async with unit_of_work(hub.sessions) as uow:
        hub.publish_after_commit(uow, await end_goal(uow.session, principal.user_id))
    return Response(status_code=204)


@operation(
    "The creator is live now, with a title, or not any more; goes out as "
    "public.live when it changes",
    {"200": "{live: {since, title} | null}", "403": "Not a creator"},
    body=LiveRequest,
    returns=responses.LiveAnswer,
)
async def put_live(request: Request) -> Response:
    """PUT /api/v1/live: the creator is live now (with a title), or not any more."""
    hub = hub_of(request)
    principal = principal_of(request)
    body = parse(LiveRequest, await json_object(request))
    async with unit_of_work(hub.sessions) as uow:
        live, events = await set_live(uow.session, principal.user_id, body.live, body.title)
        hub.publish_after_commit(uow, events)
    return json_response({"live": live})
