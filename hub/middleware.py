"""Plain ASGI middleware at the hub's edge, in front of HTTP and Socket.IO alike: the client's
address behind trusted proxies, a request id and safe headers on every response, a size limit
on every request body, and no control characters in a path or query."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from hub.auth import CONTROL
from hub.errors import ApiError, error_body
from hub.logs import AccessLog
from hub.settings import Settings

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_CONTROL_BYTES = re.compile(rb"[\x00-\x1f\x7f]")
HSTS = b"max-age=63072000; includeSubDomains"


def edge(app: ASGIApp, settings: Settings, socket_body_bytes: int) -> ASGIApp:
    """`app` behind the edge, outermost first: proxies, response headers, the access log, body
    limits, the path and query gate."""
    app = InputGate(app, settings.max_url_bytes)
    app = BodyLimit(
        app,
        settings.max_body_bytes,
        (("/webhooks/", settings.max_webhook_body_bytes), ("/socket.io/", socket_body_bytes)),
    )
    app = AccessLog(app)
    app = RequestId(app, hsts=(settings.public_url or "").startswith("https://"))
    proxied: ASGIApp = ProxyHeadersMiddleware(app, list(settings.trusted_proxies))  # type: ignore[arg-type,assignment]
    return proxied


async def respond(send: Send, error: ApiError) -> None:
    """Answer with `error` from outside Starlette, in the API's error shape."""
    body = json.dumps(error_body(error.type, error.message, error.param)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    headers += [(name.encode(), value.encode()) for name, value in (error.headers or {}).items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class RequestId:
    """Echo a sane inbound X-Request-ID, or mint one; expose it as scope['state']['request_id'].
    Every response also gets `nosniff`, HSTS when the hub is served over https, and
    `Cache-Control: no-store` when the request carried credentials (unless it says otherwise)."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        inbound = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = inbound if _SAFE_ID.match(inbound) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        private = b"authorization" in headers

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent = list(message.get("headers", []))
                sent += [
                    (b"x-request-id", request_id.encode()),
                    # A JSON answer is never sniffed into HTML (the pages add their own set).
                    (b"x-content-type-options", b"nosniff"),
                ]
                if self.hsts:
                    sent.append((b"strict-transport-security", HSTS))
                if private and not any(name.lower() == b"cache-control" for name, _ in sent):
                    sent.append((b"cache-control", b"no-store"))
                message["headers"] = sent
            await send(message)

        await self.app(scope, receive, send_with_id)


def too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        "payload_too_large",
        f"the body is larger than this route takes ({limit} bytes)",
        headers={"connection": "close"},  # the rest of the body is not read: close, not drain
    )


class BodyLimit:
    """Refuse a body above its route's limit with 413, reading no further than the limit: at
    once from Content-Length, or as a chunked body passes it. Inside Starlette the ApiError
    raised by `receive` becomes the 413; elsewhere (Socket.IO) it is answered here."""

    def __init__(self, app: ASGIApp, default: int, prefixes: Sequence[tuple[str, int]]) -> None:
        self.app = app
        self.default = default
        self.prefixes = tuple(prefixes)

    def limit(self, path: str) -> int:
        for prefix, limit in self.prefixes:
            if path.startswith(prefix):
                return limit
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["path"])
        for name, value in scope["headers"]:
            # The HTTP parser has checked that a Content-Length is digits.
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await respond(send, too_large(limit))
                return
        received = 0
        started = False

        async def receive_within() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        async def send_started(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, receive_within, send_started)
        except ApiError as exc:
            if exc.type != "payload_too_large" or started:
                raise
            await respond(send, exc)


class InputGate:
    """A URL within `max_url` bytes (414), and no NUL or other control character in a path or
    a query, decoded as the routes read them (422 naming the parameter, or "path"). A
    WebSocket upgrade with either is refused."""

    def __init__(self, app: ASGIApp, max_url: int) -> None:
        self.app = app
        self.max_url = max_url

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        error = None
        if len(scope.get("raw_path") or b"") + len(query) > self.max_url:
            error = ApiError(414, "uri_too_long", f"the URL is longer than {self.max_url} bytes")
        elif (param := _controlled(scope["path"], query)) is not None:
            message = f"{param}: must not contain NUL or other control characters"
            error = ApiError(422, "invalid_request", message, param)
        if error is None:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await receive()  # websocket.connect; closing now refuses the upgrade
            await send({"type": "websocket.close", "code": 1008})
        else:
            await respond(send, error)


def _controlled(path: str, query: bytes) -> str | None:
    if CONTROL.search(path):
        return "path"
    if _CONTROL_BYTES.search(query):
        return "query"
    if b"%" in query:  # percent-escapes decode to anything: read it as Starlette will
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if CONTROL.search(name) or CONTROL.search(value):
                return name[:64] if name and not CONTROL.search(name) else "query"
    return None
