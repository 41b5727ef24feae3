"""API keys at the edge: a platform backend's `Authorization: Bearer hk_...`, verified against
the database and remembered for a few seconds (a backend sends the same key with every call).

A revoked key stops working within REMEMBERED seconds on every node; an expired one (the old
key of a rotation, after its overlap) at its expiry exactly, since expiry is checked on every
use. `last_used_at` is written at most once a minute per key and node.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hub.auth import AuthError
from ledger.apps import ApiKey, Scope, find_key, hash_key, key_prefix, mark_used
from ledger.db import unit_of_work

REMEMBERED = 5.0  # seconds a verification (found or not) is reused
MARK_EVERY = 60.0  # seconds between writes of a key's last_used_at
KEPT = 10_000  # verifications remembered per process


class InsufficientScope(Exception):
    def __init__(self, scope: Scope) -> None:
        super().__init__(f"this key lacks the {scope.value} scope")
        self.scope = scope


def looks_like_key(credential: str) -> bool:
    return credential.startswith("hk_")


class KeyVerifier:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._seen: dict[str, tuple[ApiKey | None, float]] = {}  # hash -> (key, when read)
        self._marked: dict[int, float] = {}

    async def verify(self, credential: str, scope: Scope) -> ApiKey:
        """The live key `credential` with `scope`; AuthError (401) for anything that is not a
        live key, InsufficientScope (403) for one without the scope."""
        if key_prefix(credential) is None:
            raise AuthError("invalid_api_key", "this is not a Hub API key")
        digest = hash_key(credential)
        now = time.monotonic()
        seen = self._seen.get(digest)
        if seen is None or now - seen[1] > REMEMBERED:
            async with self._sessions() as session:
                key = await find_key(session, credential)
            if len(self._seen) >= KEPT:
                del self._seen[next(iter(self._seen))]
            self._seen[digest] = (key, now)
        else:
            key = seen[0]
        if key is None:
            raise AuthError("invalid_api_key", "this API key is unknown")
        if not key.live_at(datetime.now(UTC)):
            raise AuthError("invalid_api_key", "this API key was revoked or has expired")
        if scope not in key.scopes:
            raise InsufficientScope(scope)
        if now - self._marked.get(key.id, -MARK_EVERY) >= MARK_EVERY:
            self._marked[key.id] = now
            async with unit_of_work(self._sessions) as uow:
                await mark_used(uow.session, key.id)
        return key
