"""The ASGI application: Starlette for HTTP and python-socketio for sockets, one process."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import socketio
from arq.connections import ArqRedis
from redis.asyncio import Redis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from hub.api import ROUTES
from hub.auth import HS256Verifier
from hub.errors import EXCEPTION_HANDLERS
from hub.fees import FeeCache
from hub.middleware import RequestId
from hub.ratelimit import RateLimiter
from hub.runtime import Runtime, build_provider_clients
from hub.state import Hub
from ledger.db import make_engine, make_sessions
from realtime.publisher import Publisher
from realtime.server import create_server


def create_app(runtime: Runtime) -> ASGIApp:
    settings = runtime.settings
    verifier = HS256Verifier(
        runtime.jwt_secret, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    holder: dict[str, Hub] = {}

    async def authenticate_socket(auth: object) -> object:
        return await holder["hub"].authenticate_socket(auth)

    sio = create_server(
        redis_url=runtime.redis_url,
        authenticate=authenticate_socket,  # type: ignore[arg-type]
        cors_origins=settings.cors_origins,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = make_engine(runtime.database_url)
        sessions = make_sessions(engine)
        redis = Redis.from_url(runtime.redis_url)
        # Not arq's create_pool: it insists on reaching Redis, and a node must start (and say
        # "not ready") while Redis is down.
        queue = ArqRedis.from_url(runtime.redis_url)
        providers, http_client = build_provider_clients(settings)
        limiter = RateLimiter(runtime.redis_url)
        fees = FeeCache(redis, sessions, settings.platform_fee_bps)
        fees.start()
        hub = Hub(
            runtime=runtime,
            verifier=verifier,
            engine=engine,
            sessions=sessions,
            redis=redis,
            queue=queue,
            sio=sio,
            publisher=Publisher(sio, sessions),
            limiter=limiter,
            fees=fees,
            providers=providers,
        )
        holder["hub"] = hub
        app.state.hub = hub
        try:
            yield
        finally:
            await fees.stop()
            await limiter.close()
            await http_client.aclose()
            await queue.aclose()
            await redis.aclose()
            await engine.dispose()

    http = Starlette(
        routes=ROUTES,
        middleware=[Middleware(RequestId)],
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app: ASGIApp = socketio.ASGIApp(sio, other_asgi_app=http, socketio_path="socket.io")
    return app
