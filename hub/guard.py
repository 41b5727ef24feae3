"""Who may call a route, said once in the route table (hub/api.py) and checked before the
route runs: a user's token (any role, or some), an app's API key with a scope, either, or
nobody. The route then reads the caller with `principal_of` or `key_of`; the OpenAPI document
reads the same declaration (`access_of`) for each operation's security.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from hub.auth import Principal, bearer, bearer_or_none
from hub.http import hub_of, require_role
from hub.keys import looks_like_key
from hub.metrics import RATE_LIMITED
from hub.ratelimit import RateLimited
from ledger.accounts import Role
from ledger.apps import ApiKey, Scope

Endpoint = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class Access:
    """`roles`: a user's token is taken (any role when empty and `users` is set); `scope`: an
    API key with it is taken. Neither: no credential is asked for."""

    users: bool = False
    roles: tuple[Role, ...] = ()
    scope: Scope | None = None

    @property
    def public(self) -> bool:
        return not self.users and self.scope is None


PUBLIC = Access()


def user(*roles: Role) -> Access:
    return Access(users=True, roles=roles)


def key(scope: Scope) -> Access:
    return Access(scope=scope)


def user_or_key(roles: tuple[Role, ...], scope: Scope) -> Access:
    return Access(users=True, roles=roles, scope=scope)


def guard(endpoint: Endpoint, access: Access) -> Endpoint:
    """The endpoint, run only for a caller `access` lets in (401 or 403 otherwise)."""

    async def guarded(request: Request) -> Response:
        if access.scope is not None and (
            not access.users or looks_like_key(bearer_or_none(request))
        ):
            hub = hub_of(request)
            credential = bearer(request.headers.get("authorization"))
            found = await hub.keys.verify(credential, access.scope)
            request.state.api_key = found
            limits = await _app_limit(hub, found.app_id)
            response = await endpoint(request)
            response.headers.update(limits)
            return response
        if access.users:
            principal = await hub_of(request).authenticate(request.headers.get("authorization"))
            if access.roles:
                require_role(principal, *access.roles)
            request.state.principal = principal
        return await endpoint(request)

    guarded.access = access  # type: ignore[attr-defined]
    guarded.__wrapped__ = endpoint  # type: ignore[attr-defined]  # its @operation: hub.openapi
    guarded.__name__ = getattr(endpoint, "__name__", "endpoint")
    guarded.__doc__ = endpoint.__doc__
    return guarded


async def _app_limit(hub: Any, app_id: str) -> dict[str, str]:
    """One unit of the app's server-API limit (its own, `hub apps set APP --rate-limit`, else
    HUB_RATE_LIMIT_SERVER; all its keys together): its RateLimit-* headers, or RateLimited
    (429)."""
    try:
        tier = (await hub.apps.get(app_id)).rate_limit_server or hub.settings.rate_limit_server
        headers: dict[str, str] = await hub.limiter.hit("server", f"app:{app_id}", tier)
        return headers
    except RateLimited:
        RATE_LIMITED.labels("server").inc()
        raise


def access_of(endpoint: Any) -> Access | None:
    """What the route table declared for a route's endpoint (None: not guarded)."""
    found: Access | None = getattr(endpoint, "access", None)
    return found


def principal_of(request: Request) -> Principal:
    principal: Principal = request.state.principal
    return principal


def key_of(request: Request) -> ApiKey:
    found: ApiKey = request.state.api_key
    return found


def by_key(request: Request) -> bool:
    """Whether the caller of a route that takes either came with an API key."""
    return hasattr(request.state, "api_key")
