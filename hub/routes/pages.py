"""The web pages: creator dashboard, streaming overlay, fan wallet and admin, as one PWA.

The pages are static files that talk to the same HTTP API and Socket.IO endpoint as any other
client, with the token in an Authorization header or the Socket.IO auth payload (never in a
URL). The one exception is the overlay key, in the overlay URL's fragment: revocable, and never
sent to a server (fragments are not part of a request).
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, StrictStr
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.auth import issue_token
from hub.errors import ApiError
from hub.http import client_ip, hub_of, json_object, json_response, parse
from hub.seed import DEMO_USERS
from jobs.push import is_loopback

STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
PAGES = {
    "": "index.html",
    "creator": "creator.html",
    "fan": "fan.html",
    "admin": "admin.html",
    "overlay": "overlay.html",
}
VENDOR = STATIC / "vendor" / "socket.io.esm.min.js"
DEV_TOKEN_TTL = 12 * 3600

# No inline script or style anywhere, no third-party origin: an injected `<script>` or
# `onerror=` does not run even if some text were ever rendered as HTML. 'self' covers the
# same-origin WebSocket (CSP 3). frame-ancestors: no page may be framed (clickjacking).
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "manifest-src 'self'",
        "worker-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "referrer-policy": "no-referrer",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cross-origin-opener-policy": "same-origin",
}


class SecurityHeaders:
    """Adds the pages' security headers to every response under /app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
                # Revalidated on every use (a 304 when unchanged): a release is seen at once, and
                # the service worker never caches a stale file under a new release's name.
                headers.setdefault("cache-control", "no-cache")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def static_version(static: Path = STATIC) -> str:
    """A digest of every static file: a new release gets a new service-worker cache."""
    digest = hashlib.sha256()
    for path in sorted(static.rglob("*")):
        if path.is_file() and path.name != "sw.js":
            digest.update(path.relative_to(static).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


async def page(request: Request) -> Response:
    name = PAGES.get(request.path_params.get("page", ""))
    if name is None:
        raise ApiError(404, "not_found", "no such page")
    return FileResponse(STATIC / name)


@functools.cache
def _service_worker_source() -> str:
    return (STATIC / "sw.js").read_text().replace("__VERSION__", static_version())


async def service_worker(request: Request) -> Response:
    return Response(
        _service_worker_source(),
        media_type="text/javascript",
        headers={"service-worker-allowed": "/app/"},
    )


async def manifest(request: Request) -> Response:
    return FileResponse(STATIC / "manifest.webmanifest", media_type="application/manifest+json")


async def vendor(request: Request) -> Response:
    if not VENDOR.exists():
        raise ApiError(
            503,
            "assets_missing",
            "the Socket.IO client is not installed: run `make web` (or `make run`)",
        )
    return FileResponse(VENDOR, media_type="text/javascript")


async def config(request: Request) -> Response:
    """What the pages need to draw their forms: currencies, providers, demo sign-in."""
    hub = hub_of(request)
    settings = hub.settings
    return json_response(
        {
            "currencies": list(settings.currencies),
            "providers": sorted(hub.providers.deployment),
            "dev_signin": _dev_signin_here(request),
        }
    )


class DevTokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: StrictStr


def _dev_signin_here(request: Request) -> bool:
    """Demo sign-in hands out tokens (an admin's among them): only with HUB_DEV_SIGNIN, and
    only to a browser on this machine, so a setting copied into production still gives nothing
    to the internet (behind a balancer the client is the forwarded address, never loopback).
    The Host, and the Origin when sent, must name this machine too: a page on another site
    whose name was pointed at 127.0.0.1 (DNS rebinding) reaches loopback, but under its own
    name."""
    if not hub_of(request).settings.dev_signin or not is_loopback(client_ip(request)):
        return False
    origin = request.headers.get("origin")
    return _names_loopback("//" + request.headers.get("host", "")) and (
        origin is None or _names_loopback(origin)
    )


def _names_loopback(url: str) -> bool:
    """`url` (an origin, or //host:port) names localhost or a loopback address."""
    try:
        name = urlsplit(url).hostname or ""
    except ValueError:
        return False
    return name == "localhost" or is_loopback(name)


def _dev_only(request: Request) -> None:
    if not _dev_signin_here(request):
        raise ApiError(404, "not_found", "demo sign-in is only on under `hub dev`")


async def dev_users(request: Request) -> Response:
    _dev_only(request)
    return json_response(
        {
            "data": [
                {"id": user.user_id, "role": user.role.value, "name": user.name}
                for user in DEMO_USERS
            ]
        }
    )


async def dev_token(request: Request) -> Response:
    """A token for one of the demo users (only with HUB_DEV_SIGNIN, which `hub dev` sets)."""
    _dev_only(request)
    body = parse(DevTokenRequest, await json_object(request))
    user = next((u for u in DEMO_USERS if u.user_id == body.user_id), None)
    if user is None:
        raise ApiError(404, "not_found", "not a demo user", "user_id")
    hub = hub_of(request)
    token = issue_token(
        hub.runtime.jwt_secret,
        user.user_id,
        user.role,
        DEV_TOKEN_TTL,
        issuer=hub.settings.jwt_issuer,
        audience=hub.settings.jwt_audience,
        name=user.name,
    )
    return json_response({"token": token}, headers={"cache-control": "no-store"})


async def root(request: Request) -> Response:
    return RedirectResponse("/app/", status_code=307)


ROUTES = [
    Route("/", root, methods=["GET"]),
    Mount(
        "/app",
        routes=[
            Route("/", page, methods=["GET"]),
            Route("/sw.js", service_worker, methods=["GET"]),
            Route("/manifest.webmanifest", manifest, methods=["GET"]),
            Route("/config.json", config, methods=["GET"]),
            Route("/vendor/socket.io.esm.min.js", vendor, methods=["GET"]),
            Route("/dev/users", dev_users, methods=["GET"]),
            Route("/dev/token", dev_token, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
            Route("/{page}", page, methods=["GET"]),
        ],
        middleware=[Middleware(SecurityHeaders)],
    ),
]
