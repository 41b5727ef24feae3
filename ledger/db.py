"""Engine and the unit of work: one transaction per request, webhook or job."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]


BIGINT_MAX = 2**63 - 1  # PostgreSQL's bigint: every id, cursor and sequence number


@dataclass(frozen=True, slots=True)
class PoolSettings:
    size: int = 10
    max_overflow: int = 10
    acquire_timeout: float = 2.0  # seconds to wait for a free connection
    connect_timeout: float = 1.0  # seconds to open one: an outage is reported fast
    statement_timeout_ms: int = 30_000
    slow_query_ms: int | None = None  # log statements slower than this


def make_engine(url: str, pool: PoolSettings | None = None, **sizes: int) -> AsyncEngine:
    pool = pool or PoolSettings(
        size=sizes.get("pool_size", 10), max_overflow=sizes.get("max_overflow", 10)
    )
    engine = create_async_engine(
        url,
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_timeout=pool.acquire_timeout,
        # No pre-ping (it costs a BEGIN/ROLLBACK round trip at every checkout, a third of a
        # socket connect's database time): a connection that died with the server fails its
        # first statement instead, the request answers 503, and SQLAlchemy then invalidates
        # every connection of the pool made before (docs/operations.md). Recycling bounds the
        # age of an idle connection that a firewall may have dropped silently.
        pool_pre_ping=False,
        pool_recycle=1800,
        connect_args={
            "timeout": pool.connect_timeout,
            "server_settings": {"statement_timeout": str(pool.statement_timeout_ms)},
        },
    )
    if pool.slow_query_ms is not None:
        _log_slow_queries(engine, pool.slow_query_ms)
    return engine


def _log_slow_queries(engine: AsyncEngine, threshold_ms: int) -> None:
    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _start(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault("query_started", []).append(time.perf_counter())

    @event.listens_for(engine.sync_engine, "after_cursor_execute")
    def _end(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        elapsed_ms = (time.perf_counter() - conn.info["query_started"].pop()) * 1000
        if elapsed_ms >= threshold_ms:
            log.warning("slow query: %.0f ms", elapsed_ms, extra={"statement": statement[:500]})


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy URL (postgresql+asyncpg://…) as asyncpg itself takes it."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def make_pool(
    url: str, pool: PoolSettings | None = None, *, read_only: bool = False
) -> asyncpg.Pool:
    """A plain asyncpg pool for the hot paths: its connections prepare each statement once and
    reuse it. No connection is made before the first is needed (a node starts while
    PostgreSQL is down, and says it is not ready).

    Hub's pools run single statements and managed transactions only: no session advisory lock,
    cursor, LISTEN or SET outlives them. So a connection going back to the pool skips asyncpg's
    reset query (`pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`), a round trip on
    every release, paid by every group-committed batch before its answers went out; asyncpg
    still rolls back a transaction left open. `read_only`: PostgreSQL refuses any write on the
    pool's connections."""
    pool = pool or PoolSettings()
    settings = {"statement_timeout": str(pool.statement_timeout_ms)}
    if read_only:
        settings["default_transaction_read_only"] = "on"
    made: asyncpg.Pool = await asyncpg.create_pool(
        asyncpg_dsn(url),
        min_size=0,
        max_size=pool.size,
        max_inactive_connection_lifetime=1800,
        timeout=pool.connect_timeout,
        server_settings=settings,
        reset=_nothing_to_reset,
    )
    return made


async def _nothing_to_reset(connection: asyncpg.Connection) -> None:
    return None


def make_sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@dataclass
class UnitOfWork:
    session: AsyncSession
    _after_commit: list[AfterCommit] = field(default_factory=list)

    def after_commit(self, action: AfterCommit) -> None:
        """Run `action` once the transaction has committed; dropped if it rolls back."""
        self._after_commit.append(action)

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        """A nested transaction: if the block raises, its writes and its after-commit
        actions are discarded while the outer transaction goes on."""
        mark = len(self._after_commit)
        try:
            async with self.session.begin_nested():
                yield
        except BaseException:
            del self._after_commit[mark:]
            raise


@asynccontextmanager
async def unit_of_work(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[UnitOfWork]:
    """One transaction: commits when the block ends normally, rolls back when it raises.

    After-commit actions run only after a successful commit. Their failures are logged, never
    raised: the money has moved by then, and what must not be lost is an event row that a
    sweeper republishes.
    """
    async with sessions() as session, session.begin():
        uow = UnitOfWork(session)
        yield uow
    await run_after_commit(uow._after_commit)


async def run_after_commit(actions: Sequence[AfterCommit]) -> None:
    """Run what follows a commit, each action on its own: a failure is logged and the next
    runs (what must not be lost is an event row that a sweeper republishes)."""
    for action in actions:
        try:
            await action()
        except Exception:
            log.exception("after-commit action failed", extra={"action": repr(action)})
