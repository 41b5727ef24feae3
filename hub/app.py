"""The ASGI application: Starlette for HTTP and python-socketio for sockets, one process."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import socketio
from arq.connections import ArqRedis
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.types import ASGIApp

from hub.api import ROUTES
from hub.apps import AppDirectory
from hub.auth import HS256Verifier, Verifiers
from hub.bans import Bans
from hub.errors import EXCEPTION_HANDLERS
from hub.fees import FeeCache
from hub.keys import KeyVerifier
from hub.metrics import Sampler, observe_delivery, watch_collector
from hub.middleware import edge
from hub.ratelimit import RateLimiter
from hub.routes import pages
from hub.runtime import Runtime, build_provider_clients
from hub.serving import settle_garbage_collector
from hub.settings import Settings
from hub.state import Hub
from ledger.answers import Answer
from ledger.apps import AppSettings, TokenConfig, all_app_settings, token_configs
from ledger.db import make_engine, make_pool, make_sessions, run_after_commit
from ledger.group_commit import GroupCommit
from ledger.payout_requests import post_payout_requests
from ledger.platform import bans_in_force
from ledger.wallet_purchases import post_wallet_purchases
from ledger.wallet_tips import post_wallet_tips
from ledger.webhook_topups import (
    Applied,
    apply_card_sales,
    apply_payout_outcomes,
    apply_topups,
)
from realtime.publisher import Publisher
from realtime.server import Identity, Realtime, SocketLimits


def create_app(runtime: Runtime) -> ASGIApp:
    settings = runtime.settings
    default_tokens = HS256Verifier(
        runtime.jwt_secret,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        max_lifetime=settings.jwt_max_lifetime_seconds,
    )
    # The apps' own token keys (JWKS) are fetched with a client of their own.
    jwks_client = httpx.AsyncClient(timeout=httpx.Timeout(5.0), follow_redirects=False)
    # Clients are created here, connections are made lazily: a node starts (and says "not
    # ready") while PostgreSQL or Redis is down.
    engine = make_engine(runtime.database_url, settings.pool())
    sessions = make_sessions(engine)
    read_engine = (
        make_engine(settings.database_read_url, settings.pool())
        if settings.database_read_url
        else engine
    )
    # Timeouts bound what a Redis that stops answering (without refusing) adds to a request.
    redis = Redis.from_url(runtime.redis_url, socket_connect_timeout=2, socket_timeout=5)
    holder: dict[str, Hub] = {}

    async def token_settings() -> list[TokenConfig]:
        async with sessions() as session:
            return await token_configs(session)

    verifier = Verifiers(
        default_tokens, token_settings, jwks_client, settings.jwt_max_lifetime_seconds
    )

    async def authenticate_socket(auth: object, environ: dict[str, Any]) -> Identity:
        return await holder["hub"].authenticate_socket(auth, environ)

    async def app_settings() -> list[AppSettings]:
        async with sessions() as session:
            return await all_app_settings(session)

    apps = AppDirectory(app_settings)

    async def bans_now() -> dict[str, datetime]:
        async with sessions() as session:
            return await bans_in_force(session)

    bans = Bans(bans_now)
    deployment_origins = origin_policy(settings)

    def origin_allowed(origin: str | None, environ: dict[str, Any] | None = None) -> bool:
        """The handshake's check: the deployment's origins, or one some app allows (which
        app the socket is of is checked at connect: Hub.check_origin)."""
        return deployment_origins(origin, environ) or origin in apps.origins()

    realtime = Realtime(
        redis_url=runtime.redis_url,
        database_url=runtime.database_url,
        sessions=sessions,
        authenticate=authenticate_socket,
        origin_allowed=origin_allowed,
        transports=settings.socket_transports,
        lean=settings.socket_engine == "hub",
        limits=SocketLimits(
            connections_per_user=settings.socket_max_connections_per_user,
            connections_per_overlay_key=settings.socket_max_connections_per_overlay_key,
        ),
        on_sent=observe_delivery,
        pool=settings.pool(),
    )

    async def committed(answers: Sequence[Answer | Applied]) -> None:
        """A batch committed: the events it wrote (a replayed answer wrote none) are published
        in one pipeline."""
        events = [event for answer in answers for event in answer.events]
        await run_after_commit(holder["hub"].followups(events))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Not arq's create_pool: it insists on reaching Redis at once.
        queue = ArqRedis.from_url(runtime.redis_url, socket_connect_timeout=2, socket_timeout=5)
        providers, http_client = build_provider_clients(settings)
        providers.read_apps_from(sessions)
        limiter = RateLimiter(runtime.redis_url, fail_open=settings.rate_limit_fail_open)
        fees = FeeCache(redis, sessions, settings.platform_fee_bps)
        publisher = Publisher(redis, sessions)
        pool = await make_pool(runtime.database_url, settings.pool())

        def group_commit(run: Any, lanes: int | None = None) -> Any:
            return GroupCommit(
                pool,
                run,
                max_batch=settings.group_commit_max_batch,
                lanes=lanes or settings.group_commit_lanes,
                acquire_timeout=settings.database_pool_acquire_timeout,
                after=committed,
            )

        hub = Hub(
            runtime=runtime,
            verifier=verifier,
            keys=KeyVerifier(sessions),
            engine=engine,
            pool=pool,
            tips=group_commit(post_wallet_tips),
            purchases=group_commit(post_wallet_purchases),
            payouts=group_commit(post_payout_requests, lanes=1),  # rare: one lane each
            topups=group_commit(apply_topups),
            card_sales=group_commit(apply_card_sales),
            payout_outcomes=group_commit(apply_payout_outcomes, lanes=1),
            sessions=sessions,
            read_sessions=make_sessions(read_engine),
            redis=redis,
            queue=queue,
            sio=realtime.sio,
            realtime=realtime,
            publisher=publisher,
            limiter=limiter,
            fees=fees,
            apps=apps,
            bans=bans,
            origins=deployment_origins,
            providers=providers,
        )
        holder["hub"] = hub
        app.state.hub = hub
        sampler = Sampler(hub)
        app.state.sampler = sampler
        app.state.metrics_multiprocess = settings.workers > 1
        if settings.dev_signin:
            logging.getLogger("hub").warning(
                "HUB_DEV_SIGNIN is on: /app/ hands demo users' tokens (an admin's among them) "
                "to browsers on this machine; never set it in production"
            )
        fees.start()
        apps.start()
        bans.start()
        publisher.start()
        await realtime.start()
        sampler.start()
        if settings.gc_freeze:
            settle_garbage_collector()
        watch_collector()  # from here on: start-up's own full collection served no one
        try:
            yield
        finally:
            await sampler.stop()
            await realtime.stop()
            await publisher.stop()
            await fees.stop()
            await apps.stop()
            await bans.stop()
            await limiter.close()
            await http_client.aclose()
            await jwks_client.aclose()
            await queue.aclose()
            await redis.aclose()
            await pool.close()
            await engine.dispose()
            if read_engine is not engine:
                await read_engine.dispose()

    http = Starlette(
        routes=[*ROUTES, *pages.ROUTES],  # the API (in the OpenAPI document), then the pages
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app = socketio.ASGIApp(realtime.sio, other_asgi_app=http, socketio_path="socket.io")
    served = edge(app, settings, realtime.limits.max_message_bytes)
    served.hub_realtime = realtime  # type: ignore[attr-defined]  # for realtime.lean's sockets
    return served


def origin_policy(settings: Settings) -> Callable[..., bool]:
    """Which browser origins may open a socket: HUB_CORS_ORIGINS ("*", exact origins, or
    "scheme://host:*" for any port), and the hub's own: HUB_PUBLIC_URL's, or without it the
    origin of the host the page was served from. A client that sends no Origin (not a
    browser) is not asked."""
    listed = set(settings.cors_origins)
    any_port = {_host_of(entry.removesuffix(":*")) for entry in listed if entry.endswith(":*")}
    own = _origin_of(settings.public_url) if settings.public_url else None

    def allowed(origin: str | None, environ: dict[str, Any] | None = None) -> bool:
        if origin is None or "*" in listed or origin in listed or origin == own:
            return True
        if own is None and environ is not None and "HTTP_HOST" in environ:
            scheme = environ.get("wsgi.url_scheme", "http")
            if origin == f"{scheme}://{environ['HTTP_HOST']}":
                return True
        return bool(any_port) and _host_of(origin) in any_port

    return allowed


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _host_of(origin: str) -> tuple[str, str | None]:
    try:
        parts = urlsplit(origin)
        return parts.scheme, parts.hostname
    except ValueError:
        return "", None


def from_environment() -> ASGIApp:
    """The app of one uvicorn worker when a node runs several (`HUB_WORKERS`)."""
    from hub.runtime import resolve
    from hub.settings import load_settings

    return create_app(resolve(load_settings()))
