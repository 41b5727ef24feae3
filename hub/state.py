"""The running hub's shared clients, built once per process in the app's lifespan."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import socketio
from arq.connections import ArqRedis
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from hub.apps import AppDirectory
from hub.auth import CONTROL, AuthError, Principal, TokenVerifier, bearer
from hub.bans import Bans
from hub.errors import ApiError
from hub.fees import FeeCache
from hub.keys import KeyVerifier
from hub.logs import user_id_var
from hub.metrics import count_postings
from hub.ratelimit import RateLimiter
from hub.runtime import Runtime
from hub.settings import Settings
from ledger.accounts import DEFAULT_APP, Role, ensure_user, user_is_current
from ledger.answers import Answer
from ledger.content import content_app
from ledger.db import AfterCommit, UnitOfWork, unit_of_work
from ledger.errors import UnknownContent, UnknownCreator
from ledger.events import Event
from ledger.group_commit import GroupCommit
from ledger.ids import stored_id
from ledger.overlays import find_active
from ledger.payout_requests import PayoutCommand
from ledger.users import app_of, find_user
from ledger.wallet_purchases import PurchaseCommand
from ledger.wallet_tips import TipCommand
from ledger.webhook_topups import Applied, Delivery
from providers.jsontext import JsonLimits
from providers.registry import Providers
from realtime.publisher import Publisher
from realtime.server import Identity, Realtime, Refused

log = logging.getLogger(__name__)

_KNOWN_USERS_MAX = 100_000


@dataclass
class Hub:
    runtime: Runtime
    verifier: TokenVerifier
    keys: KeyVerifier  # platforms' API keys (the server API)
    engine: AsyncEngine
    pool: asyncpg.Pool  # plain asyncpg, for the hot paths
    tips: GroupCommit[TipCommand, Answer]  # wallet tips, group-committed on `pool`
    purchases: GroupCommit[PurchaseCommand, Answer]  # pay-per-view from the wallet, likewise
    payouts: GroupCommit[PayoutCommand, Answer]  # payout requests, likewise
    topups: GroupCommit[Delivery, Applied]  # top-up webhooks, group-committed on `pool`
    card_sales: GroupCommit[Delivery, Applied]  # card tips and purchases by webhook, likewise
    payout_outcomes: GroupCommit[Delivery, Applied]  # payouts settled by webhook, likewise
    sessions: async_sessionmaker[AsyncSession]
    read_sessions: async_sessionmaker[AsyncSession]  # a replica, or the primary
    redis: Redis
    queue: ArqRedis
    sio: socketio.AsyncServer
    realtime: Realtime
    publisher: Publisher
    limiter: RateLimiter
    fees: FeeCache
    apps: AppDirectory  # what each app set for itself (fee, currencies, limit, origins)
    bans: Bans  # the platforms' bans of their users in force
    origins: Callable[..., bool]  # the deployment's own origin policy (hub.app.origin_policy)
    providers: Providers  # the deployment's accounts and the apps' own
    # (principal, its app's currencies): a user seen with the currencies they hold accounts in
    # (an app given a currency more has its users' accounts made at their next request)
    _known: set[tuple[Principal, tuple[str, ...]]] = field(default_factory=set)
    # (app, creator) seen to exist, for `viewing`
    _creators: set[tuple[str, str]] = field(default_factory=set)
    _content_apps: dict[int, str] = field(default_factory=dict)  # content id → its app

    @property
    def settings(self) -> Settings:
        return self.runtime.settings

    @functools.cached_property
    def json_limits(self) -> JsonLimits:
        settings = self.settings
        return JsonLimits(
            settings.json_max_depth, settings.json_max_number_length, settings.json_max_values
        )

    def publish_after_commit(self, uow: UnitOfWork, events: Sequence[Event]) -> None:
        """Once the transaction commits, what follows its events (`followups`)."""
        for action in self.followups(events):
            uow.after_commit(action)

    def followups(self, events: Sequence[Event]) -> list[AfterCommit]:
        """What follows a commit that wrote `events`: count its postings and publish the events.
        (The worker's follow-ups are outbox rows the events' trigger wrote: jobs.outbox.)"""

        async def publish() -> None:
            count_postings(events)
            await self.publisher.publish(events)

        return [publish]

    @property
    def public_url(self) -> str:
        settings = self.settings
        return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")

    async def identify(self, principal: Principal) -> None:
        """Create the principal's user and accounts the first time this process sees them (and
        the accounts of a currency their app allows since)."""
        currencies = await self.currencies(principal.app_id)
        if (principal, currencies) in self._known:
            return
        facts = (
            principal.user_id,
            principal.role,
            currencies,
            principal.name,
            principal.email,
            principal.app_id,
        )
        async with self.sessions() as session:
            current = await user_is_current(session, *facts)
        if not current:
            async with unit_of_work(self.sessions) as uow:
                await ensure_user(uow.session, *facts)
        if len(self._known) >= _KNOWN_USERS_MAX:
            self._known.clear()
        self._known.add((principal, currencies))

    async def authenticate(self, authorization: str | None) -> Principal:
        principal = await self.verifier.verify(bearer(authorization))
        user_id_var.set(principal.user_id)
        banned = self.bans.banned_until(principal.user_id)
        if banned is not None:
            raise ApiError(403, "user_banned", f"banned by the platform until {banned.isoformat()}")
        await self.identify(principal)
        return principal

    async def fee_bps(self, app_id: str) -> int:
        """The platform fee on a tip or sale by a user of `app_id`: the app's, else the
        deployment's."""
        own = (await self.apps.get(app_id)).fee_bps
        return own if own is not None else await self.fees.get()

    async def currencies(self, app_id: str) -> tuple[str, ...]:
        """The currencies the app's users may use: the app's among the deployment's."""
        own = (await self.apps.get(app_id)).currencies
        deployment = self.settings.currencies
        if own is None:
            return deployment
        kept = tuple(c for c in own if c in deployment)
        if len(kept) < len(own):  # HUB_CURRENCIES lost one the app lists: none more, not all
            log.warning("app %s lists currencies HUB_CURRENCIES has not: %s", app_id, own)
        return kept

    async def check_origin(self, app_id: str, environ: dict[str, Any]) -> None:
        """A socket's page must be served from the deployment's origins or its app's own
        (the handshake let in every app's: it did not know the socket's app yet)."""
        origin = environ.get("HTTP_ORIGIN")
        if origin is None or self.origins(origin, environ):
            return
        if origin not in (await self.apps.get(app_id)).allowed_origins:
            raise Refused("origin_not_allowed", f"this app's pages are not served from {origin}")

    async def authenticate_socket(self, auth: Any, environ: dict[str, Any]) -> Identity:
        if not isinstance(auth, dict):
            auth = {}
        overlay = auth.get("overlay_key")
        if isinstance(overlay, str) and overlay:
            async with self.sessions() as session:
                key = await find_active(session, overlay)
                app_id = await app_of(session, key.creator_id) if key is not None else None
            if key is None:
                raise Refused("invalid_overlay_key", "this overlay key is unknown or revoked")
            await self.check_origin(app_id or DEFAULT_APP, environ)  # its creator's app's
            return Identity(key.creator_id, "overlay", overlay_key_id=key.id)
        token = auth.get("token")
        if not isinstance(token, str) or not token:
            raise Refused("missing_token", "send auth: {token: '<jwt>'} when connecting")
        try:
            principal = await self.verifier.verify(token)
        except AuthError as exc:
            raise Refused(exc.type, exc.message) from None
        banned = self.bans.banned_until(principal.user_id)
        if banned is not None:
            raise Refused("user_banned", f"banned by the platform until {banned.isoformat()}")
        await self.check_origin(principal.app_id, environ)
        # No identify(): a socket only reads the user's events (none for a user not yet
        # written), and the user's first HTTP request writes them. A connect writes nothing.
        viewing = auth.get("viewing")
        if viewing is not None:
            viewing = await self._check_viewing(viewing, principal.app_id)
        return Identity(
            principal.user_id,
            principal.role.value,
            viewing=viewing,
            expires_at=principal.expires_at,
        )

    async def _check_viewing(self, viewing: object, app_id: str) -> str:
        """The stored id of the creator a socket says it views: only a creator of its app that
        exists (each name would otherwise be a viewer count kept in Redis)."""
        if not isinstance(viewing, str) or not 0 < len(viewing) <= 255 or CONTROL.search(viewing):
            raise Refused("invalid_request", "viewing must be a creator's id")
        creator = stored_id(app_id, viewing)
        if not await self.is_creator(creator, app_id):
            raise Refused("creator_not_found", f"no creator {viewing[:64]}")
        return creator

    async def is_creator(self, user_id: str, app_id: str) -> bool:
        """Whether `user_id` is a creator of the app `app_id`: read once per process (a user's
        app never changes, nor does a creator become a fan again)."""
        if (app_id, user_id) in self._creators:
            return True
        async with self.sessions() as session:
            user = await find_user(session, user_id, app_id)
        if user is None or user.role is not Role.CREATOR:
            return False
        if len(self._creators) >= _KNOWN_USERS_MAX:
            self._creators.clear()
        self._creators.add((app_id, user_id))
        return True

    async def check_content(self, content_id: int, app_id: str) -> None:
        """UnknownContent (404) unless the content is a creator's of the caller's app (read
        once per content and process: content never changes creator)."""
        owner = self._content_apps.get(content_id)
        if owner is None:
            async with self.sessions() as session:
                owner = await content_app(session, content_id)
            if owner is not None:
                if len(self._content_apps) >= _KNOWN_USERS_MAX:
                    self._content_apps.clear()
                self._content_apps[content_id] = owner
        if owner != app_id:
            raise UnknownContent("no such content", param="content_id")

    async def check_creator(self, creator_id: str, app_id: str) -> None:
        """UnknownCreator (404) unless `creator_id` is a creator of the caller's app: a tip
        never crosses apps, and a creator of another app looks like none."""
        if not await self.is_creator(creator_id, app_id):
            raise UnknownCreator(f"no creator {creator_id}", param="creator_id")
