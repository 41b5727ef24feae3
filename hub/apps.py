"""What each app set for itself (ledger.apps.AppSettings), as this process knows it.

All the apps' settings are read in one query (a deployment serves tens of apps, not millions)
and read again when they are older than REFRESH seconds, or at once (at most every
UNKNOWN_REFRESH seconds) for an app this process has not seen: so a change made with
`hub apps set` reaches every node within REFRESH seconds (a background task reads them that
often too, for the socket handshake's origin check), and a new app at its first request.
The hot paths (a tip's fee, its currency) read the copy in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from ledger.apps import AppSettings
from ledger.snapshot import Snapshot


class AppDirectory:
    REFRESH = 5.0
    UNKNOWN_REFRESH = 1.0

    def __init__(self, load: Callable[[], Awaitable[list[AppSettings]]]) -> None:
        self._load = load
        self._apps: dict[str, AppSettings] = {}
        self._origins: frozenset[str] = frozenset()
        self._snapshot = Snapshot(self._read, "the apps' settings")
        self._task: asyncio.Task[None] | None = None

    async def get(self, app_id: str) -> AppSettings:
        """The app's settings (the deployment's everywhere for an app with none, or unknown).
        A request waits for a query only for an app not read yet (at most every
        UNKNOWN_REFRESH), or when no background task keeps the copy fresh: a known app's
        copy is served as it is meanwhile, even while the database hangs."""
        snapshot = self._snapshot
        if app_id not in self._apps:
            if snapshot.older_than(self.UNKNOWN_REFRESH):
                await snapshot.refresh(self.UNKNOWN_REFRESH)
        elif self._task is None and snapshot.older_than(self.REFRESH):
            await snapshot.refresh(self.REFRESH)
        return self._apps.get(app_id) or AppSettings(app_id)

    def origins(self) -> frozenset[str]:
        """Every origin some app allows, as last read (the handshake's check, before the
        socket says which app it is of; its app's own list is checked at connect)."""
        return self._origins

    def start(self) -> None:
        """Read them every REFRESH seconds in the background, so that the handshake's origin
        check (which cannot wait for a query) knows every app's."""

        async def refresh() -> None:
            while True:
                await self._snapshot.refresh(0.0)
                await asyncio.sleep(self.REFRESH)

        self._task = asyncio.create_task(refresh(), name="app-settings")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _read(self) -> None:
        loaded = await self._load()
        self._apps = {app.app_id: app for app in loaded}
        self._origins = frozenset(o for app in loaded for o in app.allowed_origins)
