"""The sandbox's HTTP face: Paystack's API under /paystack, Stripe's under /stripe, its own under
/sandbox, a checkout page for people, and /_sandbox control routes for tests."""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from html import escape
from string import Template
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from providers import currency, minor_units, text
from providers.paystack import REFUND_NOTE_PREFIX
from sandbox import (
    PAYMENT_OUTCOMES,
    REFUND_OUTCOMES,
    TRANSFER_OUTCOMES,
    Delivery,
    Payment,
    Sandbox,
    SandboxConfig,
    iso_time,
    new_id,
)

__all__ = ["SandboxConfig", "create_sandbox_app", "serve_sandbox"]


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _state(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def _token_of(request: Request, basic: bool) -> str:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return credentials.strip()
    if basic and scheme.lower() == "basic":  # Stripe also takes the key as the Basic user name
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            return base64.b64decode(credentials).decode().partition(":")[0]
    return ""


def _authorized(request: Request, secret: str, basic: bool = False) -> bool:
    return hmac.compare_digest(_token_of(request, basic).encode(), secret.encode())


async def _json_object(request: Request) -> dict[str, Any]:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body is not a JSON object")
    return body


# -- Paystack: JSON in, {"status", "message", "data"} out, Bearer secret key --

PaystackHandler = Callable[[Sandbox, dict[str, Any], Request], JSONResponse]


def _paystack_error(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"status": False, "message": message}, status)


def _paystack_ok(message: str, data: Any, status: int = 200) -> JSONResponse:
    return JSONResponse({"status": True, "message": message, "data": data}, status)


def _paystack(handler: PaystackHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        sandbox = _state(request)
        if not _authorized(request, sandbox.config.paystack_secret_key):
            return _paystack_error("Invalid key", 401)
        try:
            body = await _json_object(request)
        except BadRequest as exc:
            return _paystack_error(str(exc))
        return handler(sandbox, body, request)

    return endpoint


def paystack_initialize(s: Sandbox, body: dict[str, Any], request: Request) -> JSONResponse:
    email = text(body.get("email"))
    amount = minor_units(body.get("amount"))
    code = currency(body.get("currency") or "NGN")
    if email is None or "@" not in email:
        return _paystack_error("Invalid Email Address Passed")
    if not amount:
        return _paystack_error("Invalid Amount Sent")
    if code is None:
        return _paystack_error("Currency not supported by merchant")
    reference = text(body.get("reference")) or new_id("T", 8)
    if s.payment_of("paystack", reference) is not None:
        return _paystack_error("Duplicate Transaction Reference")
    metadata = body.get("metadata")
    if isinstance(metadata, str):  # Paystack takes metadata as an object or a JSON string
        with contextlib.suppress(ValueError):
            metadata = json.loads(metadata)
    p = s.new_payment(
        "paystack",
        reference,
        amount,
        code,
        email=email,
        success_url=text(body.get("callback_url")),
        metadata=metadata,
    )
    data = {"authorization_url": s.checkout_url(p), "access_code": p.id, "reference": reference}
    return _paystack_ok("Authorization URL created", data)


def paystack_verify(s: Sandbox, body: dict[str, Any], request: Request) -> JSONResponse:
    p = s.payment_of("paystack", request.path_params["reference"])
    if p is None:
        return _paystack_error("Transaction reference not found")
    # Paystack calls a transaction nobody has paid yet "abandoned", even while it can still be paid.
    status = {"pending": "abandoned", "succeeded": "success", "failed": "failed"}[p.status]
    return _paystack_ok("Verification successful", s.paystack_transaction(p, status, p.amount))


def paystack_recipient(s: Sandbox, body: dict[str, Any], request: Request) -> JSONResponse:
    type_ = text(body.get("type"))
    name = text(body.get("name"))
    if type_ is None or name is None:
        return _paystack_error("Recipient type and name are required")
    details = (str(body.get("account_number") or ""), str(body.get("bank_code") or ""))
    key = (type_, name, *details, str(body.get("currency") or "NGN"))
    if key not in s.recipients:  # Paystack answers the same recipient for the same account
        now = iso_time(time.time())
        s.recipients[key] = {
            "active": True,
            "createdAt": now,
            "currency": key[-1],
            "domain": "test",
            "id": next(s.numbers),
            "integration": 100001,
            "name": name,
            "recipient_code": new_id("RCP_", 8),
            "type": type_,
            "updatedAt": now,
            "is_deleted": False,
            "details": {
                "authorization_code": None,
                "account_number": details[0],
                "account_name": name,
                "bank_code": details[1],
                "bank_name": "Sandbox Bank",
            },
            "metadata": body.get("metadata"),
        }
    return _paystack_ok("Transfer recipient created successfully", s.recipients[key], 201)


def paystack_transfer(s: Sandbox, body: dict[str, Any], request: Request) -> JSONResponse:
    amount = minor_units(body.get("amount"))
    code = currency(body.get("currency") or "NGN")
    recipient = next(
        (r for r in s.recipients.values() if r["recipient_code"] == body.get("recipient")), None
    )
    if body.get("source") != "balance":
        return _paystack_error("Invalid transfer source")
    if not amount or code is None:
        return _paystack_error("Invalid amount or currency")
    if recipient is None:
        return _paystack_error("Recipient specified is invalid")
    reference = text(body.get("reference")) or new_id("", 10)
    t = s.transfer(reference)
    if t is None or t.flavour != "paystack":  # a reference names one transfer: retries are safe
        t = s.new_transfer(
            "paystack",
            new_id("TRF_", 8),
            reference,
            amount,
            code,
            recipient["recipient_code"],
            text(body.get("reason")),
        )
    now = iso_time(time.time())
    data = {
        "integration": 100001,
        "domain": "test",
        "amount": t.amount,
        "currency": t.currency,
        "source": "balance",
        "reason": t.reason,
        "recipient": recipient["id"],
        "status": "pending",
        "transfer_code": t.id,
        "id": t.number,
        "reference": t.reference,
        "createdAt": iso_time(t.created),
        "updatedAt": now,
    }
    return _paystack_ok("Transfer has been queued", data)


def paystack_refund(s: Sandbox, body: dict[str, Any], request: Request) -> JSONResponse:
    p = s.payment_of("paystack", str(body.get("transaction") or ""))
    if p is None:
        return _paystack_error("Transaction reference not found")
    if p.status != "succeeded":
        return _paystack_error("Cannot refund a transaction that was not successful")
    amount = minor_units(body.get("amount")) or s.refundable(p)
    if body.get("currency") and currency(body.get("currency")) != p.currency:
        return _paystack_error("Currency does not match the transaction's")
    note = text(body.get("merchant_note"))
    reference = None
    if note is not None and note.startswith(REFUND_NOTE_PREFIX):
        reference = note.removeprefix(REFUND_NOTE_PREFIX)
    r = s.refund(reference) if reference else None
    if r is None or r.flavour != "paystack":
        if amount > s.refundable(p):
            return _paystack_error("Refund amount cannot be greater than the transaction amount")
        r = s.new_refund("paystack", str(next(s.numbers)), reference, p, amount, note=note)
    data = {
        "transaction": s.paystack_transaction(p, "success", p.amount),
        "integration": 100001,
        "deducted_amount": 0,
        "channel": None,
        "merchant_note": r.note,
        "customer_note": text(body.get("customer_note")),
        "status": "pending",
        "refunded_by": "sandbox@example.com",
        "expected_at": iso_time(r.created + 7 * 24 * 3600),
        "currency": p.currency,
        "domain": "test",
        "amount": r.amount,
        "fully_deducted": False,
        "id": int(r.id),
        "createdAt": iso_time(r.created),
        "updatedAt": iso_time(time.time()),
    }
    return _paystack_ok("Refund has been queued for processing", data)


# -- Stripe: form-encoded in, the object out, Bearer (or Basic) secret key, Idempotency-Key --

StripeReply = tuple[int, dict[str, Any]]
StripeHandler = Callable[[Sandbox, dict[str, str]], StripeReply]


def _stripe_error(message: str, param: str | None = None, status: int = 400) -> StripeReply:
    return status, {"error": {"type": "invalid_request_error", "message": message, "param": param}}


def _nested(form: dict[str, str], prefix: str) -> dict[str, str]:
    """Stripe's `prefix[key]=value` fields as a dict (one level, as metadata uses it)."""
    start = prefix + "["
    return {
        k[len(start) : -1]: v
        for k, v in form.items()
        if k.startswith(start) and k.endswith("]") and "[" not in k[len(start) :]
    }


def _stripe(handler: StripeHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        sandbox = _state(request)
        if not _authorized(request, sandbox.config.stripe_secret_key, basic=True):
            status, reply = _stripe_error("Invalid API Key provided.", status=401)
            return JSONResponse(reply, status)
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace"), True))
        key = request.headers.get("idempotency-key")
        remembered = sandbox.replies.get((request.url.path, key)) if key else None
        if remembered is not None:
            return JSONResponse(remembered[1], remembered[0], {"Idempotent-Replayed": "true"})
        status, reply = handler(sandbox, form)
        if key and status < 300:
            sandbox.replies[(request.url.path, key)] = (status, reply)
        return JSONResponse(reply, status)

    return endpoint


def stripe_session(s: Sandbox, form: dict[str, str]) -> StripeReply:
    item = "line_items[0]"
    if form.get("mode") != "payment":
        return _stripe_error("The sandbox supports mode=payment only.", "mode")
    code = currency(form.get(f"{item}[price_data][currency]"))
    unit = minor_units(form.get(f"{item}[price_data][unit_amount]"))
    quantity = minor_units(form.get(f"{item}[quantity]", "1"))
    if code is None:
        return _stripe_error("Missing required param: currency.", f"{item}[price_data][currency]")
    if not unit or not quantity:
        return _stripe_error("Invalid integer.", f"{item}[price_data][unit_amount]")
    metadata = _nested(form, "metadata")
    p = s.new_payment(
        "stripe",
        form.get("client_reference_id") or metadata.get("reference") or new_id("", 8),
        unit * quantity,
        code,
        email=form.get("customer_email"),
        success_url=form.get("success_url"),
        cancel_url=form.get("cancel_url"),
        metadata=metadata,
    )
    return 200, s.session_object(p)


def stripe_transfer(s: Sandbox, form: dict[str, str]) -> StripeReply:
    amount = minor_units(form.get("amount"))
    code = currency(form.get("currency"))
    destination = form.get("destination")
    if not amount:
        return _stripe_error("Invalid positive integer", "amount")
    if code is None:
        return _stripe_error("Missing required param: currency.", "currency")
    if not destination:
        return _stripe_error("Missing required param: destination.", "destination")
    metadata = _nested(form, "metadata")
    id_ = new_id("tr_")
    reference = metadata.get("reference") or id_
    t = s.new_transfer(
        "stripe", id_, reference, amount, code, destination, form.get("description"), metadata
    )
    return 200, s.stripe_transfer(t)


def stripe_refund(s: Sandbox, form: dict[str, str]) -> StripeReply:
    intent = form.get("payment_intent") or form.get("charge", "").replace("ch_", "pi_", 1)
    p = s.payment_of("stripe", intent) if intent.startswith("pi_") else None
    if p is None:
        return _stripe_error(f"No such payment_intent: '{intent}'", "payment_intent", 404)
    if p.status != "succeeded":
        return _stripe_error("This PaymentIntent does not have a successful charge to refund.")
    amount = minor_units(form.get("amount")) or s.refundable(p)
    if amount > s.refundable(p):
        return _stripe_error("Refund amount is greater than unrefunded amount on charge.", "amount")
    metadata = _nested(form, "metadata")
    r = s.new_refund("stripe", new_id("re_"), metadata.get("reference"), p, amount, metadata)
    return 200, s.stripe_refund(r, "pending")


# -- the sandbox's own API: JSON both ways, loopback only, no key --


def _need(value: Any, name: str) -> Any:
    if value is None or value == "" or value == 0:
        raise BadRequest(f"{name} is missing or invalid")
    return value


async def sandbox_payment(request: Request) -> Response:
    s, body = _state(request), await _json_object(request)
    reference = _need(text(body.get("reference")), "reference")
    p = s.payment_of("sandbox", reference)
    if p is None:  # a reference names one payment: a retried call gets the same checkout
        p = s.new_payment(
            "sandbox",
            reference,
            _need(minor_units(body.get("amount")), "amount"),
            _need(currency(body.get("currency")), "currency"),
            email=text(body.get("email")),
            success_url=text(body.get("callback_url")),
            metadata=body.get("metadata"),
        )
    return JSONResponse({"id": p.id, "checkout_url": s.checkout_url(p), "status": p.status})


async def sandbox_transfer(request: Request) -> Response:
    s, body = _state(request), await _json_object(request)
    reference = _need(text(body.get("reference")), "reference")
    t = s.transfer(reference)
    if t is None or t.flavour != "sandbox":
        t = s.new_transfer(
            "sandbox",
            new_id("sbx_tr_"),
            reference,
            _need(minor_units(body.get("amount")), "amount"),
            _need(currency(body.get("currency")), "currency"),
            _need(text(body.get("recipient")), "recipient"),
            text(body.get("reason")),
        )
    return JSONResponse({"id": t.id, "reference": t.reference, "status": t.status})


async def sandbox_refund(request: Request) -> Response:
    s, body = _state(request), await _json_object(request)
    reference = _need(text(body.get("reference")), "reference")
    r = s.refund(reference)
    if r is None or r.flavour != "sandbox":
        key = text(body.get("payment_reference")) or text(body.get("provider_payment_ref")) or ""
        p = s.payment_of("sandbox", key)
        if p is None:
            raise BadRequest(f"no payment {key!r}", 404)
        if p.status != "succeeded":
            raise BadRequest("the payment did not succeed")
        amount = _need(minor_units(body.get("amount")), "amount")
        if currency(body.get("currency")) not in (None, p.currency):
            raise BadRequest("the currency is not the payment's")
        if amount > s.refundable(p):
            raise BadRequest("the amount is more than is left to refund")
        r = s.new_refund("sandbox", new_id("sbx_rf_"), reference, p, amount)
    return JSONResponse({"id": r.id, "reference": r.reference, "status": r.status})


# -- the checkout page, for people --

_LAYOUT = Template("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>$title</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:system-ui,sans-serif;max-width:30rem;margin:3rem auto;padding:0 1rem}
form{display:inline}button{font-size:1rem;padding:.5rem 1.25rem;margin:.5rem .5rem 0 0}
.muted{color:#666}</style></head>
<body>$body</body></html>""")


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(_LAYOUT.substitute(title=escape(title), body=body), status)


def _money(amount: int, code: str) -> str:
    return escape(f"{code} {amount // 100:,}.{amount % 100:02d}")


def _return_url(p: Payment, ok: bool) -> str | None:
    """Where "Back to the merchant" leads, or None: only to an http(s) URL, so that a return
    URL given by whoever created the payment (`javascript:`, `data:`) is never a link."""
    if p.flavour == "stripe":
        url = p.success_url if ok else (p.cancel_url or p.success_url)
        url = url.replace("{CHECKOUT_SESSION_ID}", p.id) if url else None
    elif not p.success_url:
        return None
    else:
        # Paystack sends the customer back with trxref and reference; the sandbox adds its
        # outcome.
        query = {"trxref": p.reference, "reference": p.reference}
        if p.flavour == "sandbox":
            query = {"reference": p.reference, "status": p.status}
        url = p.success_url + ("&" if "?" in p.success_url else "?") + urlencode(query)
    return url if url is not None and _linkable(url) else None


def _linkable(url: str) -> bool:
    if any(c.isspace() or not c.isprintable() for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


async def checkout_page(request: Request) -> Response:
    p = _state(request).payments.get(request.path_params["id"])
    if p is None:
        return _page("No such checkout", "<h1>No such checkout</h1>", 404)
    buttons = (
        f'<form method="post" action="{escape(p.id)}/pay"><button>Pay</button></form>'
        f'<form method="post" action="{escape(p.id)}/decline"><button>Decline</button></form>'
        if p.status == "pending"
        else f"<p>This payment has already {escape(p.status)}.</p>"
    )
    body = (
        f"<h1>Pay {_money(p.amount, p.currency)}</h1>"
        f'<p class="muted">Sandbox checkout, in the manner of <b>{escape(p.flavour)}</b></p>'
        f"<p>Reference <code>{escape(p.reference)}</code></p>{buttons}"
    )
    return _page("Sandbox checkout", body)


async def checkout_outcome(request: Request) -> Response:
    s = _state(request)
    p = s.payments.get(request.path_params["id"])
    if p is None:
        return _page("No such checkout", "<h1>No such checkout</h1>", 404)
    if p.status != "pending":
        return _page("Already done", f"<h1>This payment has already {escape(p.status)}</h1>", 409)
    if request.path_params["action"] not in ("pay", "decline"):
        return _page("Not found", "<h1>Not found</h1>", 404)
    ok = request.path_params["action"] == "pay"
    deliveries, statuses = await s.complete_payment(p, ["succeeded" if ok else "failed"])
    answer = (
        f"the hub answered {statuses[0]}"
        if statuses[0] is not None
        else "the hub could not be reached (see /_sandbox/deliveries)"
    )
    url = _return_url(p, ok)
    link = f'<p><a href="{escape(url)}">Back to the merchant</a></p>' if url else ""
    body = (
        f"<h1>Payment {'succeeded' if ok else 'declined'}</h1>"
        f"<p>{_money(p.amount, p.currency)}, reference <code>{escape(p.reference)}</code></p>"
        f'<p class="muted">Webhook <code>{escape(deliveries[0].type)}</code>: {answer}.</p>{link}'
    )
    return _page("Sandbox checkout", body)


async def index(request: Request) -> Response:
    rows = "".join(
        f'<li><a href="checkout/{escape(p.id)}">{escape(p.reference)}</a> '
        f"{_money(p.amount, p.currency)} ({escape(p.flavour)}, {escape(p.status)})</li>"
        for p in reversed(list(_state(request).payments.values())[-50:])
    )
    return _page("Sandbox", f"<h1>Sandbox payments</h1><ul>{rows}</ul>")


# -- control routes, for tests --


async def _control(
    request: Request, allowed: tuple[str, ...]
) -> tuple[list[str], int, bool, dict[str, Any]]:
    body = await _json_object(request)
    events = body.get("events") or [body.get("outcome", "succeeded")]
    copies = body.get("copies", 1)
    if not isinstance(events, list) or not all(e in allowed for e in events):
        raise BadRequest(f"outcomes are among {', '.join(allowed)}")
    if not isinstance(copies, int) or not 1 <= copies <= 100:
        raise BadRequest("copies is an integer from 1 to 100")
    return events, copies, bool(body.get("concurrent", False)), body


def _delivered(result: tuple[list[Delivery], list[int | None]]) -> JSONResponse:
    deliveries, statuses = result
    return JSONResponse({"event_ids": [d.event_id for d in deliveries], "statuses": statuses})


async def deliver_payment(request: Request) -> Response:
    s = _state(request)
    p = s.payment(request.path_params["key"])
    if p is None:
        raise BadRequest("no such checkout or payment reference", 404)
    events, copies, concurrent, body = await _control(request, PAYMENT_OUTCOMES)
    amount = body.get("amount")
    if amount is not None and minor_units(amount) is None:
        raise BadRequest("amount is an integer in minor units")
    return _delivered(await s.complete_payment(p, events, copies, concurrent, amount))


async def deliver_transfer(request: Request) -> Response:
    s = _state(request)
    t = s.transfer(request.path_params["key"])
    if t is None:
        raise BadRequest("no such transfer", 404)
    events, copies, concurrent, _ = await _control(request, TRANSFER_OUTCOMES)
    return _delivered(await s.complete_transfer(t, events, copies, concurrent))


async def deliver_refund(request: Request) -> Response:
    s = _state(request)
    r = s.refund(request.path_params["key"])
    if r is None:
        raise BadRequest("no such refund", 404)
    events, copies, concurrent, _ = await _control(request, REFUND_OUTCOMES)
    return _delivered(await s.complete_refund(r, events, copies, concurrent))


async def deliveries(request: Request) -> Response:
    return JSONResponse({"deliveries": list(_state(request).log)})


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def _bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, BadRequest)
    return JSONResponse(
        {"error": {"type": "invalid_request", "message": str(exc)}}, status_code=exc.status
    )


def create_sandbox_app(config: SandboxConfig) -> Starlette:
    sandbox = Sandbox(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await sandbox.close()

    routes = [
        Route("/", index),
        Route("/healthz", healthz),
        Route("/checkout/{id}", checkout_page),
        Route("/checkout/{id}/{action:str}", checkout_outcome, methods=["POST"]),
        Route("/paystack/transaction/initialize", _paystack(paystack_initialize), methods=["POST"]),
        Route("/paystack/transaction/verify/{reference}", _paystack(paystack_verify)),
        Route("/paystack/transferrecipient", _paystack(paystack_recipient), methods=["POST"]),
        Route("/paystack/transfer", _paystack(paystack_transfer), methods=["POST"]),
        Route("/paystack/refund", _paystack(paystack_refund), methods=["POST"]),
        Route("/stripe/v1/checkout/sessions", _stripe(stripe_session), methods=["POST"]),
        Route("/stripe/v1/transfers", _stripe(stripe_transfer), methods=["POST"]),
        Route("/stripe/v1/refunds", _stripe(stripe_refund), methods=["POST"]),
        Route("/sandbox/payments", sandbox_payment, methods=["POST"]),
        Route("/sandbox/transfers", sandbox_transfer, methods=["POST"]),
        Route("/sandbox/refunds", sandbox_refund, methods=["POST"]),
        Route("/_sandbox/checkout/{key}/deliver", deliver_payment, methods=["POST"]),
        Route("/_sandbox/transfers/{key}/deliver", deliver_transfer, methods=["POST"]),
        Route("/_sandbox/refunds/{key}/deliver", deliver_refund, methods=["POST"]),
        Route("/_sandbox/deliveries", deliveries),
    ]
    app = Starlette(routes=routes, exception_handlers={BadRequest: _bad_request}, lifespan=lifespan)
    app.state.sandbox = sandbox
    return app


async def serve_sandbox(config: SandboxConfig, host: str, port: int) -> None:
    """Run the sandbox until the server is told to stop (Ctrl-C, SIGTERM)."""
    server_config = uvicorn.Config(
        create_sandbox_app(config), host=host, port=port, lifespan="on", log_level="info"
    )
    await uvicorn.Server(server_config).serve()
