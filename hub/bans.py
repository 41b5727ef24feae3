"""The platforms' bans in force (POST /api/v1/users/{id}/ban), as this process knows them.

Every node reads the users banned now every REFRESH seconds (the partial index `users_banned`
keeps that read to the banned few) and learns its own bans at once: a ban reaches every node
within REFRESH seconds, and the banned user's sockets are closed at once by a control message on
the bus. A request checks the copy in memory, on every path a token is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

log = logging.getLogger(__name__)


class Bans:
    REFRESH = 5.0

    def __init__(self, load: Callable[[], Awaitable[dict[str, datetime]]]) -> None:
        self._load = load
        self._until: dict[str, datetime] = {}
        # this process's own changes, with when they were made: a read that began before one
        # committed must not undo it
        self._local: dict[str, tuple[datetime | None, float]] = {}
        self._task: asyncio.Task[None] | None = None

    def banned_until(self, user_id: str) -> datetime | None:
        until = self._until.get(user_id)
        return until if until is not None and until > datetime.now(UTC) else None

    def changed(self, user_id: str, until: datetime | None) -> None:
        """A ban this process made or lifted (after its commit)."""
        self._local[user_id] = (until, time.monotonic())
        if until is None:
            self._until.pop(user_id, None)
        else:
            self._until[user_id] = until

    async def reload(self) -> None:
        began = time.monotonic()
        loaded = dict(await self._load())
        self._local = {u: change for u, change in self._local.items() if change[1] >= began}
        for user_id, (until, _) in self._local.items():
            if until is None:
                loaded.pop(user_id, None)
            else:
                loaded[user_id] = until
        self._until = loaded

    def start(self) -> None:
        async def refresh() -> None:
            while True:
                try:
                    await self.reload()
                except Exception as exc:  # the database away: keep what was read
                    log.warning("could not read the bans in force: %s", exc)
                await asyncio.sleep(self.REFRESH)

        self._task = asyncio.create_task(refresh(), name="bans")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
