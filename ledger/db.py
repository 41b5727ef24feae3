"""Engine and the unit of work: one transaction per request, webhook or job."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

log = logging.getLogger(__name__)

AfterCommit = Callable[[], Awaitable[None]]


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> AsyncEngine:
    return create_async_engine(
        url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True
    )


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
    for action in uow._after_commit:
        try:
            await action()
        except Exception:
            log.exception("after-commit action failed", extra={"action": repr(action)})
