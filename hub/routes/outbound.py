"""The server API's outbound webhooks: an app's endpoints, their delivery log, redelivery."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from starlette.requests import Request
from starlette.responses import Response

from hub import responses
from hub.errors import ApiError
from hub.guard import key_of
from hub.http import (
    hub_of,
    json_object,
    json_response,
    moment,
    page_query,
    parse,
    path_id,
)
from hub.openapi import PAGE, operation, query
from hub.routes.platform import TYPE_PATTERN
from jobs.webhooks import url_problem
from ledger import webhooks
from ledger.db import unit_of_work

DEFAULT_OVERLAP = 24 * 3600
TYPE = re.compile(TYPE_PATTERN)


class EndpointRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: StrictStr = Field(max_length=2048)
    event_types: list[StrictStr] = Field(default_factory=list, max_length=50)
    description: StrictStr | None = Field(default=None, max_length=200)


class EndpointChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: StrictStr | None = Field(default=None, max_length=2048)
    event_types: list[StrictStr] | None = Field(default=None, max_length=50)
    description: StrictStr | None = Field(default=None, max_length=200)
    enabled: StrictBool | None = None


class RotateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: StrictInt = Field(default=DEFAULT_OVERLAP, ge=0, le=7 * 24 * 3600)


class RedeliverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: StrictStr


def _check_url(request: Request, url: str) -> None:
    problem = url_problem(url, hub_of(request).settings.webhook_allow_private_targets)
    if problem is not None:
        raise ApiError(422, "invalid_request", f"url: {problem}", "url")


def _check_types(types: list[str]) -> None:
    for type_ in types:
        if not TYPE.fullmatch(type_) or len(type_) > 64:
            raise ApiError(422, "invalid_request", "event_types: Hub event types", "event_types")
        if type_.startswith(("app.", "public.app.")):
            raise ApiError(
                422,
                "invalid_request",
                "event_types: the platform's own notifications are not sent back",
                "event_types",
            )


def _endpoint_id(request: Request) -> int:
    return path_id(
        request,
        "endpoint_id",
        webhooks.UnknownEndpoint("no such webhook endpoint", param="endpoint_id"),
    )


@operation(
    "A webhook endpoint of the app: Hub's events of its users (all, or "
    "`event_types`) POSTed to `url`, signed the Standard Webhooks way with "
    "`secret` (shown here and on rotation)",
    {
        "201": "The endpoint and its secret",
        "409": "too_many_webhook_endpoints (20 an app)",
    },
    body=EndpointRequest,
    returns=responses.WebhookEndpointWithSecret,
)
async def create(request: Request) -> Response:
    """POST /api/v1/webhook-endpoints: a new endpoint and its signing secret (201)."""
    hub = hub_of(request)
    key = key_of(request)
    body = parse(EndpointRequest, await json_object(request))
    _check_url(request, body.url)
    _check_types(body.event_types)
    async with unit_of_work(hub.sessions) as uow:
        endpoint, secret = await webhooks.create_endpoint(
            uow.session, key.app_id, body.url, body.event_types, body.description
        )
    return json_response({**endpoint.as_json(), "secret": secret}, 201)


@operation(
    "The app's webhook endpoints", {"200": "{data: [endpoint]}"}, returns=responses.WebhookEndpoints
)
async def index(request: Request) -> Response:
    hub = hub_of(request)
    key = key_of(request)
    async with hub.read_sessions() as session:
        endpoints = await webhooks.list_endpoints(session, key.app_id)
    return json_response({"data": [endpoint.as_json() for endpoint in endpoints]})


@operation(
    "One endpoint (enabled, failing_since, disabled_reason)",
    {"200": "The endpoint", "404": "webhook_endpoint_not_found"},
    returns=responses.WebhookEndpoint,
)
async def show(request: Request) -> Response:
    hub = hub_of(request)
    key = key_of(request)
    async with hub.read_sessions() as session:
        endpoint = await webhooks.get_endpoint(session, key.app_id, _endpoint_id(request))
    return json_response(endpoint.as_json())


@operation(
    "Change url, event_types, description; enabled: false turns it off, true "
    "back on (and clears its failure record)",
    {"200": "The endpoint", "404": "webhook_endpoint_not_found"},
    body=EndpointChange,
    returns=responses.WebhookEndpoint,
)
async def change(request: Request) -> Response:
    """PATCH: url, event_types, description; `enabled` turns it off or back on."""
    hub = hub_of(request)
    key = key_of(request)
    body = parse(EndpointChange, await json_object(request))
    if body.url is not None:
        _check_url(request, body.url)
    if body.event_types is not None:
        _check_types(body.event_types)
    async with unit_of_work(hub.sessions) as uow:
        endpoint = await webhooks.update_endpoint(
            uow.session,
            key.app_id,
            _endpoint_id(request),
            url=body.url,
            event_types=body.event_types,
            description=body.description,
            enabled=body.enabled,
        )
    return json_response(endpoint.as_json())


@operation(
    "Delete the endpoint and its delivery log",
    {"204": "Deleted", "404": "webhook_endpoint_not_found"},
)
async def delete(request: Request) -> Response:
    hub = hub_of(request)
    key = key_of(request)
    async with unit_of_work(hub.sessions) as uow:
        await webhooks.delete_endpoint(uow.session, key.app_id, _endpoint_id(request))
    return Response(status_code=204)


@operation(
    "A new secret; deliveries carry a signature with each secret for "
    "overlap_seconds (default 86400)",
    {"200": "The endpoint and its new secret", "404": "webhook_endpoint_not_found"},
    body=RotateRequest,
    returns=responses.WebhookEndpointWithSecret,
)
async def rotate_secret(request: Request) -> Response:
    """A new secret; for `overlap_seconds` (default a day) deliveries carry both signatures."""
    hub = hub_of(request)
    key = key_of(request)
    body = parse(RotateRequest, await json_object(request, optional=True))
    async with unit_of_work(hub.sessions) as uow:
        endpoint, secret = await webhooks.rotate_secret(
            uow.session, key.app_id, _endpoint_id(request), body.overlap_seconds
        )
    return json_response({**endpoint.as_json(), "secret": secret})


@operation(
    "The endpoint's delivery log, newest first; ?status=pending|delivered|failed",
    {
        "200": "{data: [delivery with last_attempt], next_cursor, has_more}",
        "404": "webhook_endpoint_not_found",
    },
    params=[
        *PAGE,
        query(
            "status",
            {"type": "string", "enum": ["pending", "delivered", "failed"]},
            "Only these",
        ),
    ],
    returns=responses.DeliveryPage,
)
async def deliveries(request: Request) -> Response:
    """The endpoint's delivery log, newest first: `?status=pending|delivered|failed`."""
    hub = hub_of(request)
    key = key_of(request)
    limit, before = page_query(request)
    status = request.query_params.get("status")
    if status is not None and status not in ("pending", "delivered", "failed"):
        raise ApiError(422, "invalid_request", "status: pending, delivered or failed", "status")
    async with hub.read_sessions() as session:
        page, cursor = await webhooks.list_deliveries(
            session, key.app_id, _endpoint_id(request), status, limit, before
        )
    return json_response({"data": page, "next_cursor": cursor, "has_more": cursor is not None})


@operation(
    "Send every delivery made since `since` again (each user's in order)",
    {"202": "{redelivering: n}", "404": "webhook_endpoint_not_found"},
    body=RedeliverRequest,
    returns=responses.Redelivering,
)
async def redeliver_since(request: Request) -> Response:
    """POST .../redeliver {since}: every delivery made since then, sent again in order."""
    hub = hub_of(request)
    key = key_of(request)
    body = parse(RedeliverRequest, await json_object(request))
    since = moment(body.since, "since")
    async with unit_of_work(hub.sessions) as uow:
        count = await webhooks.redeliver_since(
            uow.session, key.app_id, _endpoint_id(request), since
        )
    return json_response({"redelivering": count}, 202)


def _delivery_id(request: Request) -> int:
    return path_id(
        request,
        "delivery_id",
        webhooks.UnknownDelivery("no such webhook delivery", param="delivery_id"),
    )


@operation(
    "One delivery: its body and every attempt (status code, first 1 KiB of "
    "the response, duration, error)",
    {"200": "The delivery", "404": "webhook_delivery_not_found"},
    returns=responses.DeliveryDetail,
)
async def delivery(request: Request) -> Response:
    """One delivery with its body and every attempt."""
    hub = hub_of(request)
    key = key_of(request)
    async with hub.read_sessions() as session:
        found = await webhooks.get_delivery(session, key.app_id, _delivery_id(request))
    return json_response(found)


@operation(
    "Send the delivery again now, with a fresh round of retries",
    {"202": "The delivery, pending", "404": "webhook_delivery_not_found"},
    returns=responses.DeliveryDetail,
)
async def redeliver(request: Request) -> Response:
    hub = hub_of(request)
    key = key_of(request)
    async with unit_of_work(hub.sessions) as uow:
        found = await webhooks.redeliver(uow.session, key.app_id, _delivery_id(request))
    return json_response(found, 202)
