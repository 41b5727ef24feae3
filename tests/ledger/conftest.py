"""The ledger's tests call the batch functions directly, with payments and payouts that no
provider (not even the sandbox) knows. The follow-ups those functions queue in the outbox would
send a later test's burst worker to ask the provider about them, and retry for minutes: each
test that queues them (`pytestmark`) takes back the follow-ups that reach a provider."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ledger.db import asyncpg_dsn
from tests.conftest import Services

_REMOTE = ("payment.verify", "payout.send")


@pytest.fixture
async def no_remote_followups(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[None]:
    async with sessions() as session:
        before = await session.scalar(text("SELECT coalesce(max(id), 0) FROM outbox"))
    yield
    async with sessions() as session, session.begin():
        await session.execute(
            text("DELETE FROM outbox WHERE id > :before AND topic = ANY(:topics)"),
            {"before": before, "topics": list(_REMOTE)},
        )


@pytest.fixture
async def connection(services: Services) -> AsyncIterator[Any]:
    """A plain asyncpg connection, as the hub's group commits use them."""
    connection = await asyncpg.connect(asyncpg_dsn(services.database_url))
    yield connection
    await connection.close()
