"""Provider webhooks: verify the raw bytes, record once, apply in the same transaction."""

from __future__ import annotations

import logging
import time

from starlette.requests import Request
from starlette.responses import Response

from hub import responses
from hub.errors import ApiError
from hub.http import hub_of, json_response, rate_limit
from hub.metrics import WEBHOOKS
from hub.openapi import operation
from ledger.accounts import DEFAULT_APP
from ledger.db import unit_of_work
from ledger.ids import stored_id
from ledger.inbox import malformed_event_id, record_delivery
from ledger.provider_events import EventKind
from ledger.settlement import apply_event
from ledger.webhook_topups import Delivery, batchable
from providers.base import BadSignature, MalformedPayload

log = logging.getLogger(__name__)


@operation(
    "Provider webhooks: paystack, stripe, or a Standard Webhooks sender",
    {
        "200": "Recorded (applied, duplicate, ignored, mismatch or unknown)",
        "400": "Signed, but not a valid event: stored as rejected",
        "401": "Bad signature: nothing stored",
        "404": "No sender by that name",
    },
    limited=True,
    returns=responses.WebhookReceipt,
)
async def receive(request: Request) -> Response:
    hub = hub_of(request)
    # /webhooks/{provider}: the deployment's account; /apps/{app_id}/webhooks/{provider}: the
    # app's own, whose payments, payouts and refunds alone it can touch (ledger.app_providers)
    kind = request.path_params["provider"]
    name = stored_id(request.path_params.get("app_id", DEFAULT_APP), kind)
    provider = await hub.providers.get(name)
    if provider is None:
        raise ApiError(404, "not_found", f"no webhook sender named {kind!r} here")
    headers = await rate_limit(hub, request, "webhooks", None)
    body = await request.body()
    try:
        provider.verify(request.headers, body, time.time())
    except BadSignature as exc:
        WEBHOOKS.labels(kind, "invalid_signature").inc()
        # Nothing is stored: an unsigned body is noise, and storing it would let anyone fill
        # the inbox.
        raise ApiError(401, "invalid_signature", str(exc) or "signature mismatch") from None
    # As stored in the inbox: PostgreSQL's text holds no NUL (load_object refuses such bodies).
    text = body.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    try:
        event = provider.parse(request.headers, body)
    except MalformedPayload as exc:
        WEBHOOKS.labels(kind, "rejected").inc()
        async with unit_of_work(hub.sessions) as uow:
            await record_delivery(
                uow.session,
                provider=name,
                event_id=malformed_event_id(body),
                event_type=None,
                payload=text,
                outcome="rejected",
                detail=str(exc)[:500],
            )
        raise ApiError(400, "malformed_payload", f"the body is not a valid event: {exc}") from None
    if batchable(event):
        # A top-up's success joins the next group commit (one call to PostgreSQL for the
        # batch); a card tip's or card purchase's comes back deferred, untouched, and joins the
        # card sales' group commit; any other payment's (none known) is apply_event's. A
        # payout's outcome joins the payout outcomes'. Failures and refunds are apply_event's.
        delivery = Delivery(event, text)
        if event.kind is EventKind.PAYMENT_SUCCEEDED:
            applied = await hub.topups.submit(delivery)
            if applied.deferred:
                applied = await hub.card_sales.submit(delivery)
        else:
            applied = await hub.payout_outcomes.submit(delivery)
        if not applied.deferred:
            if applied.outcome == "mismatch":
                log.warning(
                    "webhook mismatch from %s, event %s: %s", name, event.event_id, applied.detail
                )
            WEBHOOKS.labels(kind, applied.outcome).inc()
            return json_response({"received": True, "outcome": applied.outcome}, 200, headers)
    async with unit_of_work(hub.sessions) as uow:
        settled = await apply_event(uow.session, event, text)
        if settled.events:
            hub.publish_after_commit(uow, settled.events)
    WEBHOOKS.labels(kind, settled.outcome).inc()
    return json_response({"received": True, "outcome": settled.outcome}, 200, headers)
