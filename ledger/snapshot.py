"""A process's copy of rows it reads on its hot paths (the apps' settings, their token settings,
their provider accounts), read again when it is older than its reader allows."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


class Snapshot:
    """`read()` loads the rows and keeps what it makes of them (its owner's state); `refresh`
    calls it when the copy is older than asked, one caller at a time (the others wait, then
    find it fresh), and keeps the old copy when the database fails (logged). A hot path checks
    `older_than` first: no coroutine when the copy is fresh."""

    def __init__(self, read: Callable[[], Awaitable[None]], what: str) -> None:
        self._read = read
        self._what = what
        self._read_at = -math.inf  # never read: older than anything
        self._lock = asyncio.Lock()

    def older_than(self, seconds: float) -> bool:
        return time.monotonic() - self._read_at > seconds

    async def refresh(self, older_than: float) -> None:
        async with self._lock:
            if not self.older_than(older_than):
                return  # another caller read it while this one waited
            try:
                await self._read()
            except Exception as exc:  # the database away: keep what was read
                log.warning("could not read %s: %s", self._what, exc)
            self._read_at = time.monotonic()
